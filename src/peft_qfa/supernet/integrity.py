"""Load-time integrity: a saved QFA checkpoint whose config disagrees with its tensors is an error.

transformers reports missing or mis-shaped tensors in a load report and leaves the affected
parameters as they were allocated: for a supernet or a materialized subnet that is uninitialized
memory (NaN scales) behind a model that looks loaded. So before any weight is read,
:func:`check_checkpoint_tensors` compares the safetensors headers of the checkpoint with the
parameters the ``"qfa"`` config implies for every target layer, and names the config field that
disagrees: ``bits`` / ``layer_bits`` (the file holds other bit-widths), ``group_size`` (scale
shapes), ``target_modules`` (a target the file stores in full precision, or QFA tensors for a layer
that is not a target). A truncated or unreadable weight file is named with its path.

:func:`supernet_fingerprint` identifies a supernet by its config and a few of its integer codes;
adapters record it, so that loading them onto another supernet of the same shapes is an error.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence

import torch
from torch import nn

_BITS_KEY = re.compile(r"^b(\d+)_(packed|scales|zeros)$")


def safetensors_header(path: str | os.PathLike) -> dict[str, dict]:
    """The tensor entries of a safetensors file's header; ``ValueError`` naming the file when it is truncated."""
    path = os.fspath(path)
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if size < 8 or length > size - 8:
                raise ValueError("shorter than its header")
            header = json.loads(handle.read(length))
        entries = {key: entry for key, entry in header.items() if key != "__metadata__"}
        end = max((entry["data_offsets"][1] for entry in entries.values()), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise ValueError(
            f"The weight file {path} is damaged ({err}); it was probably cut off by an interrupted save or "
            "download. Save or download it again."
        ) from None
    if size != 8 + length + end:
        raise ValueError(
            f"The weight file {path} is truncated ({size} bytes, its header describes {8 + length + end}); it was "
            "cut off by an interrupted save or download. Save or download it again."
        )
    return entries


def check_json_files(folder: str | os.PathLike) -> None:
    """Every ``*.json`` file of a saved folder parses (an empty ``generation_config.json`` would load as defaults)."""
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if not name.endswith(".json") or not os.path.isfile(path):
            continue
        try:
            with open(path, encoding="utf-8") as handle:
                json.load(handle)
        except (OSError, ValueError) as err:
            raise ValueError(
                f"The file {path} is not valid JSON ({err}); it was probably cut off by an interrupted save. Save "
                "the model again (or restore that file)."
            ) from None


ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
_ADAPTER_KEY = re.compile(r"\.qfa_(?P<matrix>[AB])\.(?:[^.]+\.)?b(?P<bits>\d+)(?:\.weight)?$")


def check_saved_folder(folder: str | os.PathLike) -> None:
    """The files of a saved folder that no weight loader checks before use: JSON, safetensors headers, adapters."""
    check_json_files(folder)
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            safetensors_header(os.path.join(folder, name))
    check_adapter_files(folder)


def check_adapter_files(folder: str | os.PathLike) -> None:
    """QFA adapters saved in ``folder``: the rank ``r`` and the ``bits`` of adapter_config.json match the tensors.

    PEFT would otherwise re-initialise every mismatched matrix with a load report (or fail with a size
    error that names no field).
    """
    config_path = os.path.join(folder, ADAPTER_CONFIG)
    weights_path = os.path.join(folder, ADAPTER_WEIGHTS)
    if not (os.path.isfile(config_path) and os.path.isfile(weights_path)):
        return
    with open(config_path, encoding="utf-8") as handle:
        config = json.load(handle)
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "QFA":
        return
    r, bits = config.get("r"), config.get("bits")
    for key, entry in safetensors_header(weights_path).items():
        match = _ADAPTER_KEY.search(key)
        if match is None:
            continue
        rank = entry["shape"][0] if match["matrix"] == "A" else entry["shape"][-1]
        if rank != r:
            raise ValueError(
                f"{config_path} says `r={r}`, but {weights_path} holds rank-{rank} adapters (e.g. `{key}` of shape "
                f"{entry['shape']}); restore the adapter_config.json saved with these weights."
            )
        if bits and int(match["bits"]) not in bits and not config.get("shared_adapters"):
            raise ValueError(
                f"{config_path} says `bits={bits}`, but {weights_path} holds adapters for {match['bits']} bits "
                f"(`{key}`); restore the adapter_config.json saved with these weights."
            )


def _expected_tensors(model: nn.Module, target_names: Iterable[str]) -> dict[str, dict[str, tuple[int, ...]]]:
    """``{target: {parameter name: shape}}`` of the (empty, meta) layers that will receive the weights."""
    expected = {}
    for name in target_names:
        module = model.get_submodule(name)
        expected[name] = {key: tuple(t.shape) for key, t in module.state_dict(keep_vars=True).items()}
    return expected


def _field_for_bits(materialized: bool) -> str:
    return "layer_bits" if materialized else "bits"


def _describe(name: str, wanted: dict[str, tuple], found: dict[str, tuple], materialized: bool) -> str | None:
    """Which config field explains the difference between one layer's expected and saved tensors."""
    if wanted.items() <= found.items():
        unexpected = sorted(k for k in set(found) - set(wanted) if _BITS_KEY.match(k))
        if not unexpected:
            return None
        return (
            f"`{_field_for_bits(materialized)}`: the file holds {unexpected} for `{name}`, which the config does not "
            "list"
        )
    quantized = {k for k in found if _BITS_KEY.match(k)}
    if not quantized:
        return (
            f"`target_modules`: the config makes `{name}` a QFA layer, but the file stores it in full precision "
            f"({sorted(found) or 'no tensors'})"
        )
    wanted_bits = sorted({int(m.group(1)) for k in wanted if (m := _BITS_KEY.match(k))})
    found_bits = sorted({int(m.group(1)) for k in quantized if (m := _BITS_KEY.match(k))})
    if wanted_bits != found_bits and not set(wanted_bits) <= set(found_bits):
        return (
            f"`{_field_for_bits(materialized)}`: the config says {wanted_bits} bits for `{name}`, the file holds "
            f"{found_bits}"
        )
    for key, shape in wanted.items():
        if key in found and found[key] != shape:
            field = "group_size" if key.endswith(("_scales", "_zeros")) else "the layer's shape"
            return f"`{field}`: `{name}.{key}` has shape {list(found[key])} in the file, the config implies {list(shape)}"
    missing = sorted(set(wanted) - set(found))
    return f"missing tensors: the file has no {[f'{name}.{k}' for k in missing[:3]]}"


def check_checkpoint_tensors(
    model: nn.Module, config, target_names: Sequence[str], checkpoint_files: Sequence[str] | None
) -> None:
    """Refuse a saved QFA checkpoint whose ``config`` disagrees with its tensors (see the module docstring).

    Runs on the empty skeleton, before transformers reads any weight. Checkpoints that are not
    safetensors, or whose tensor names transformers converts on load, are left to transformers.
    """
    files = [os.fspath(f) for f in checkpoint_files or []]
    if files:  # the folder's other files (adapters, search data, generation config) are read later by others
        folder = os.path.dirname(files[0])
        check_saved_folder(folder)
    if not files or not all(f.endswith(".safetensors") for f in files):
        return
    found: dict[str, tuple[int, ...]] = {}
    for path in files:
        found.update({key: tuple(entry["shape"]) for key, entry in safetensors_header(path).items()})
    model_keys = set(model.state_dict(keep_vars=True))
    if not (model_keys & set(found)):
        return  # names converted on load (another checkpoint layout): nothing here to compare by name
    targets = set(target_names)
    problems = []
    for name, wanted in _expected_tensors(model, target_names).items():
        prefix = f"{name}."
        saved = {key[len(prefix) :]: shape for key, shape in found.items() if key.startswith(prefix)}
        saved = {key: shape for key, shape in saved.items() if "." not in key}
        if "weight" not in wanted and any(_BITS_KEY.match(k) for k in saved):
            saved.pop("weight", None)  # the int32 guard beside each saved QFA layer
        problem = _describe(name, wanted, saved, config.materialized)
        if problem:
            problems.append(problem)
    strays = sorted(
        {key.rsplit(".", 1)[0] for key in found if _BITS_KEY.match(key.rsplit(".", 1)[-1])} - targets
    )
    if strays:
        problems.append(
            f"`target_modules` / `modules_to_not_convert`: the file holds QFA tensors for {strays[:3]}, which the "
            "config does not make QFA layers"
        )
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise ValueError(
            f"This QFA checkpoint's quantization_config disagrees with its tensors: {'; '.join(problems[:3])}{more}. "
            "Was config.json edited by hand, or copied from another model? Restore the config.json saved with "
            "these weights."
        )


# ---------------------------------------------------------------------------------------------- fingerprint

FINGERPRINT_VALUES = 64
"""Integer codes read from each sampled layer; int32 codes do not depend on the load dtype."""


def supernet_fingerprint(model: nn.Module) -> str | None:
    """A short hash of a supernet: its layers' names, bits, shapes and the first codes of three of them.

    Two supernets built from different weights or with different settings differ in their integer
    codes, so adapters that record this hash can tell which supernet they were trained on. ``None``
    when the model holds no supernet layer (or its layers are not loaded yet).
    """
    from .layer import QFALinear, find_bit_layers

    layers = [(n, m) for n, m in find_bit_layers(model).items() if isinstance(m, QFALinear)]
    if not layers:
        return None
    digest = hashlib.sha256()
    for name, layer in layers:
        digest.update(f"{name}:{layer.in_features}x{layer.out_features}:{layer.candidate_bits}:{layer.group_size};".encode())
    for _, layer in (layers[0], layers[len(layers) // 2], layers[-1]):
        for bits in layer.candidate_bits:
            packed = getattr(layer, f"b{bits}_packed")
            if packed.device.type == "meta":
                return None
            digest.update(packed.detach().reshape(-1)[:FINGERPRINT_VALUES].to("cpu", torch.int32).numpy().tobytes())
    return digest.hexdigest()[:16]


_ALLOW_OTHER_SUPERNET = [False]


@contextlib.contextmanager
def allow_other_supernet():
    """``with peft_qfa.allow_other_supernet():`` load adapters onto a supernet other than their own.

    The explicit override of the fingerprint check (for example after rebuilding a supernet with
    the same settings on other hardware, where GPTQ's codes may differ in a few places).
    """
    previous = _ALLOW_OTHER_SUPERNET[0]
    _ALLOW_OTHER_SUPERNET[0] = True
    try:
        yield
    finally:
        _ALLOW_OTHER_SUPERNET[0] = previous


def check_fingerprint(recorded: str | None, model: nn.Module) -> str | None:
    """The model's fingerprint, after checking it is the ``recorded`` one (when both are known)."""
    current = supernet_fingerprint(model)
    if recorded and current and recorded != current and not _ALLOW_OTHER_SUPERNET[0]:
        raise ValueError(
            f"These QFA adapters were trained on another supernet (its fingerprint {recorded}, this one's {current}): "
            "same shapes, different quantized weights, so the adapters would not correct this supernet's error. "
            "Load the supernet they were saved with; to load them anyway, wrap the load in "
            "`with peft_qfa.allow_other_supernet():` or remove `supernet_fingerprint` from adapter_config.json."
        )
    return current


__all__ = [
    "allow_other_supernet",
    "check_adapter_files",
    "check_checkpoint_tensors",
    "check_fingerprint",
    "check_json_files",
    "check_saved_folder",
    "safetensors_header",
    "supernet_fingerprint",
]
