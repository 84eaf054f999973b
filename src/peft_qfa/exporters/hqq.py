"""HQQ export: every packed layer as an ``HQQLinear`` state, float scale and zero per group, its own bits.

HQQ dequantizes ``W = (W_q - zero) * scale`` per group (hqq's ``Quantizer.dequantize``), the form of
our grid, and stores ``zero`` as a float; with ``axis=1`` a group is ``group_size`` consecutive
inputs of one output row, as ours. So the export copies codes, scales and zero points unchanged
(only hqq's own bit packing, ``hqq.core.bitpack.BitPack``, is applied): it is exact.

The folder is transformers' HQQ serialization: ``config.json`` with ``quantization_config``
(``quant_method: "hqq"``) and ``model.safetensors`` holding, per quantized linear, the encoded
``HQQLinear.state_dict()`` (``W_q``, ``scale``, ``zero``, ``nbits``, ``group_size``, ...). Each
layer carries its own ``nbits`` in its tensors, so per-layer bits survive even though
``HqqConfig``'s ``quant_config`` is keyed by layer *type* (``self_attn.q_proj``) and cannot tell
block 3 from block 4; that key holds the most common setting of the type.
"""

from __future__ import annotations

import collections
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import atomic_folder
from .source import PackedTensors, packed_layers

HQQ_INSTALL = "pip install hqq  (or: pip install 'peft-qfa[export]')"
WEIGHTS_NAME = "model.safetensors"


def _require_hqq():
    try:
        from hqq.core import quantize
    except ImportError as err:
        raise ImportError(
            f"export(format='hqq') writes hqq's own layer state and needs the hqq package: {HQQ_INSTALL}"
        ) from err
    return quantize


def hqq_quant_config(bits: int, group_size: int) -> dict[str, Any]:
    """hqq's per-layer config for codes we already have: no optimisation, float (unrounded) zero points."""
    quantize = _require_hqq()
    config = quantize.BaseQuantizeConfig(nbits=bits, group_size=group_size, axis=1)
    config["weight_quant_params"].update(optimize=False, round_zero=False)
    return config


def hqq_layer_state(
    packed: PackedTensors, compute_dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """The encoded ``HQQLinear.state_dict()`` of one layer: what transformers' HQQ serialization stores."""
    quantize = _require_hqq()
    out_features, in_features = packed.codes.shape
    packing = quantize.Quantizer.bit_to_packing[packed.bits]
    # axis=1: rows of group_size consecutive inputs, one scale and zero per row (hqq's reshape([-1, group_size]))
    codes = packed.codes.reshape(-1, packed.group_size)
    layer = quantize.HQQLinear(None, None, compute_dtype=compute_dtype, device="cpu", initialize=False)
    layer.quant_config = hqq_quant_config(packed.bits, packed.group_size)
    layer.offload_meta = False
    layer.W_q = quantize.Quantizer.pack[packing](codes).contiguous()
    layer.meta = {
        "nbits": packed.bits,
        "group_size": packed.group_size,
        "shape": torch.Size((out_features, in_features)),
        "scale": packed.scales.reshape(-1, 1).to(compute_dtype).contiguous(),
        "zero": packed.zeros.reshape(-1, 1).to(compute_dtype).contiguous(),
        "axis": 1,
        "packing": packing,
        "unpack_view_dtype": quantize.Quantizer.unpack_view_dtype[packing],
        "view_as_float": False,
        "quant_scale": False,
        "quant_zero": False,
        "compute_dtype": compute_dtype,
    }
    layer.bias = None if packed.bias is None else packed.bias.to(compute_dtype).contiguous()
    return {key: value for key, value in layer.state_dict().items() if value is not None}


def _linear_tag(name: str) -> str:
    """transformers' HQQ key of a layer: ``model.layers.3.self_attn.q_proj`` -> ``self_attn.q_proj``."""
    return ".".join(
        part for part in name.split(".") if part not in ("model", "layers") and not part.isnumeric()
    )


def hqq_config_dict(layers: dict[str, PackedTensors], skip_modules: list[str]) -> dict[str, Any]:
    """``quantization_config`` for config.json: per layer type, its most common (bits, group size)."""
    by_tag: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for name, packed in layers.items():
        by_tag[_linear_tag(name)][(packed.bits, packed.group_size)] += 1
    quant_config = {
        tag: hqq_quant_config(*counts.most_common(1)[0][0]) for tag, counts in sorted(by_tag.items())
    }
    return {"quant_method": "hqq", "quant_config": quant_config, "skip_modules": skip_modules}


def _float_state(model: nn.Module, packed_names: set[str]) -> dict[str, torch.Tensor]:
    """Every tensor outside the packed layers (embeddings, norms, head), tied copies written once."""
    state: dict[str, torch.Tensor] = {}
    seen: dict[int, str] = {}
    for key, tensor in model.state_dict().items():
        owner = key.rsplit(".", 1)[0]
        if owner in packed_names:
            continue
        if tensor.data_ptr() in seen and tensor.numel():
            continue  # a tied weight (lm_head = embed_tokens): transformers re-ties it from the config
        seen[tensor.data_ptr()] = key
        state[key] = tensor.detach().contiguous().cpu()
    return state


def write_hqq(model: nn.Module, folder: str | os.PathLike, tokenizer: Any = None) -> Path:
    """Write ``model`` (materialized) as an HQQ folder; returns the folder."""
    from safetensors.torch import save_file

    from ..supernet.config import unwrap_model
    from ..supernet.integration import IMPORT_MARKER

    base = unwrap_model(model)
    layers = {name: PackedTensors.of(layer) for name, layer in packed_layers(base).items()}
    tensors = _float_state(base, set(layers))
    for name, packed in layers.items():
        tensors.update({f"{name}.{key}": value for key, value in hqq_layer_state(packed).items()})
    # an HQQ folder is loaded without peft_qfa: drop our "import peft_qfa first" marker
    config = {key: value for key, value in base.config.to_dict().items() if value != IMPORT_MARKER}
    skip = sorted(
        {_linear_tag(n) for n, m in base.named_modules() if isinstance(m, nn.Linear) and n not in layers}
    )
    config["quantization_config"] = hqq_config_dict(layers, skip or ["lm_head"])
    with atomic_folder(folder, "OUTPUT") as staging:
        save_file(tensors, staging / WEIGHTS_NAME, metadata={"format": "pt"})
        (staging / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
        if getattr(base, "generation_config", None) is not None:
            base.generation_config.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    return Path(folder)


__all__ = ["hqq_config_dict", "hqq_layer_state", "hqq_quant_config", "write_hqq"]
