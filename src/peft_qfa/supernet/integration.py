"""Which linears become ``QFALinear`` layers, and the module swap itself.

The quantizer decides *when* (before weight loading for a saved supernet, after it for a fresh
build); this module decides *which* modules (``target_modules`` / ``modules_to_not_convert``)
and performs the replacement.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import torch
from torch import nn
from transformers.quantizers.quantizers_utils import should_convert_module
from transformers.utils import logging

from ..quant import QuantizedWeight
from .config import QFAQuantizationConfig
from .layer import QFALinear
from .packed_embedding import QFAPackedEmbedding, QFAPackedHead
from .packed_layer import QFAPackedLinear
from .scope import conv1d_message

logger = logging.get_logger(__name__)

GUARD_SUFFIX = "weight"
"""Each saved QFA layer also writes its candidate bits under ``{layer}.weight`` (an int32 vector).

A model built *without* the QFA quantizer (``import peft_qfa`` forgotten) expects a float
``[out, in]`` weight under that name, so transformers refuses the file with a size-mismatch
error instead of silently leaving random weights where the quantized ones were not read."""


IMPORT_MARKER = "qfa (a peft-qfa checkpoint: pip install peft-qfa, then import peft_qfa before loading it)"
"""Written as ``attn_implementation`` into a QFA model's ``config.json``.

transformers reads that key before it builds the model, and without ``import peft_qfa`` it refuses
the value with a ``ValueError`` that quotes it, so a forgotten import says what to do; with the
import, the ``"qfa"`` quantizer clears it (:func:`clear_import_marker`) before the model is built.
In memory the marker is a plain config attribute: the model's own ``_attn_implementation`` is untouched."""


def mark_needs_peft_qfa(config) -> None:
    """Make ``save_pretrained`` write :data:`IMPORT_MARKER` into ``config.json``."""
    config.attn_implementation = IMPORT_MARKER


def clear_import_marker(config):
    """Undo :data:`IMPORT_MARKER` on a config read from a QFA folder: transformers picks its default attention."""
    if getattr(config, "_attn_implementation", None) == IMPORT_MARKER:
        config._attn_implementation = None
    return config


def _tied_weight_names(model: nn.Module) -> set[str]:
    """Parameter names that share storage with another one (``lm_head.weight`` <-> embeddings).

    While transformers builds the skeleton the weights are not tied yet, so the model's declared
    ties (``all_tied_weights_keys``) are read as well as the actual sharing.
    """
    declared = getattr(model, "all_tied_weights_keys", None) or {}
    names = set(declared) | set(declared.values())
    get_input = getattr(model, "get_input_embeddings", None)
    embeddings = get_input() if callable(get_input) else None
    if embeddings is not None:
        shared = getattr(embeddings, "weight", None)
        names |= {n for n, p in model.named_parameters(remove_duplicate=False) if p is shared}
    return names


def _output_embeddings(model: nn.Module) -> nn.Module | None:
    get_output = getattr(model, "get_output_embeddings", None)
    return get_output() if callable(get_output) else None


def _matches_target(name: str, target_modules: str | list[str]) -> bool:
    if isinstance(target_modules, str):
        return target_modules == "all-linear" or re.fullmatch(target_modules, name) is not None
    return any(name == key or name.endswith(f".{key}") for key in target_modules)


def find_qfa_targets(
    model: nn.Module,
    config: QFAQuantizationConfig,
    keep_in_fp32_modules: Iterable[str] | None = None,
) -> dict[str, nn.Linear]:
    """``{module name: nn.Linear}`` of the layers ``config`` turns into supernet layers.

    ``"all-linear"`` skips the output head; an explicit list or regex may name it unless its weight
    is tied to the input embeddings (a supernet keeps no float copy, so the tie could not hold).
    ``modules_to_not_convert`` and the model's ``_keep_in_fp32_modules`` always win. Raises a
    ``ValueError`` naming the linears that exist when nothing matches.
    """
    skip = list(config.modules_to_not_convert or []) + list(keep_in_fp32_modules or [])
    head = _output_embeddings(model)
    tied = _tied_weight_names(model)
    linears = {name: m for name, m in model.named_modules() if isinstance(m, nn.Linear)}
    targets: dict[str, nn.Linear] = {}
    for name, module in linears.items():
        if not _matches_target(name, config.target_modules):
            continue
        if not should_convert_module(name, skip or None):
            continue
        if module is head and config.target_modules == "all-linear":
            continue
        if f"{name}.weight" in tied:
            raise ValueError(
                f"QFAQuantizationConfig targets `{name}`, whose weight is tied to the input embeddings; a "
                "supernet keeps no float copy of a target, so the tie cannot hold. Remove it from "
                "`target_modules` or add it to `modules_to_not_convert`."
            )
        targets[name] = module
    if not targets:
        conv1d_message(model)  # GPT-2-style Conv1D layers: name them rather than "no linear layer"
        examples = list(linears)[:5]
        raise ValueError(
            f"QFAQuantizationConfig(target_modules={config.target_modules!r}, "
            f"modules_to_not_convert={config.modules_to_not_convert!r}) matches no linear layer of "
            f"{type(model).__name__}. "
            + (
                f"Its linear layers are e.g. {examples}."
                if examples
                else "The model has no nn.Linear layers."
            )
        )
    if not isinstance(config.target_modules, str):
        unused = [key for key in config.target_modules if not any(_matches_target(n, [key]) for n in targets)]
        if unused:
            logger.warning(f"QFA target_modules entries {unused} matched no linear layer; they are ignored.")
    bad = {name: m.in_features for name, m in targets.items() if m.in_features % config.group_size}
    if bad:
        raise ValueError(
            f"QFAQuantizationConfig: group_size={config.group_size} does not divide in_features of "
            f"{len(bad)} target layer(s), e.g. {dict(list(bad.items())[:3])}. Pick a group size that divides "
            "them or add those layers to `modules_to_not_convert`."
        )
    return targets


def _qfa_linear_like(
    linear: nn.Linear, config: QFAQuantizationConfig, dtype: torch.dtype, device
) -> QFALinear:
    return QFALinear(
        linear.in_features,
        linear.out_features,
        bits=config.bits,
        group_size=config.group_size,
        bias=linear.bias is not None,
        dtype=dtype,
        device=device,
    )


def replace_with_qfa_linear(
    model: nn.Module,
    config: QFAQuantizationConfig,
    dtype: torch.dtype | None = None,
    keep_in_fp32_modules: Iterable[str] | None = None,
) -> list[str]:
    """Swap every target linear for an empty layer on the meta device (loading a saved checkpoint).

    A supernet's targets become ``QFALinear`` layers; a materialized subnet's (its config carries
    ``layer_bits``) become ``QFAPackedLinear`` layers of their own bit-width. transformers then fills
    ``b{bits}_packed`` / ``b{bits}_scales`` / ``b{bits}_zeros`` (and ``bias``) by name from the
    checkpoint. Returns the replaced module names.
    """
    targets = find_qfa_targets(model, config, keep_in_fp32_modules)
    if config.materialized:
        missing = sorted(set(targets) - set(config.layer_bits))
        unknown = sorted(set(config.layer_bits) - set(targets))
        if missing or unknown:
            raise ValueError(
                f"This materialized QFA checkpoint does not fit {type(model).__name__}: `layer_bits` lacks "
                f"{missing[:3]} and names unknown layers {unknown[:3]}. Was config.json edited by hand?"
            )
    for name, linear in targets.items():
        layer_dtype = dtype if isinstance(dtype, torch.dtype) else linear.weight.dtype
        if config.materialized:
            layer = QFAPackedLinear(
                linear.in_features,
                linear.out_features,
                config.layer_bits[name],
                config.group_size,
                bias=linear.bias is not None,
                dtype=layer_dtype,
                device="meta",
            )
        else:
            layer = _qfa_linear_like(linear, config, layer_dtype, "meta")
        model.set_submodule(name, layer)
    if config.materialized and config.embedding_bits is not None:
        replace_with_packed_embeddings(model, config, dtype)
    return list(targets)


def replace_with_packed_embeddings(model: nn.Module, config: QFAQuantizationConfig, dtype: torch.dtype | None) -> None:
    """Empty packed embedding and head on the meta device, for a deployed model saved with ``embedding_bits``."""
    embedding, head = model.get_input_embeddings(), _output_embeddings(model)
    dtype = dtype if isinstance(dtype, torch.dtype) else embedding.weight.dtype

    def table(like: nn.Module) -> QFAPackedEmbedding:
        rows, cols = like.weight.shape
        return QFAPackedEmbedding(rows, cols, config.embedding_bits, config.group_size, dtype=dtype, device="meta")

    packed = table(embedding)
    model.set_input_embeddings(packed)
    if head is not None:
        model.set_output_embeddings(QFAPackedHead(tied_to=packed) if config.tied_head else QFAPackedHead(table=table(head)))


def install_qfa_linear(
    model: nn.Module,
    name: str,
    linear: nn.Linear,
    config: QFAQuantizationConfig,
    weights: Mapping[int, QuantizedWeight],
) -> QFALinear:
    """Replace the full-precision ``linear`` at ``name`` by a ``QFALinear`` holding ``weights``.

    The new layer is built on the meta device and then receives the quantized tensors, so no
    placeholder copies are allocated; the caller drops its last reference to ``linear``.
    """
    layer = _qfa_linear_like(linear, config, linear.weight.dtype, "meta")
    layer.load_quantized(weights, bias=linear.bias)
    model.set_submodule(name, layer)
    return layer


def guard_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ``{layer}.weight`` guard tensors written beside each QFA layer (see :data:`GUARD_SUFFIX`)."""
    return {
        f"{name}.{GUARD_SUFFIX}": torch.tensor(module.candidate_bits, dtype=torch.int32)
        for name, module in model.named_modules()
        if isinstance(module, QFALinear)
    }


def guard_key_patterns(layer_names: Iterable[str]) -> set[str]:
    """Regexes for transformers' ``_keys_to_ignore_on_load_unexpected``: the guards of these layers."""
    return {rf"(^|\.){re.escape(name)}\.{GUARD_SUFFIX}$" for name in layer_names}
