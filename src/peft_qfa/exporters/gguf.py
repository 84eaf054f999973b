"""GGUF export: one file llama.cpp loads, every quantized layer as exact ``Q4_1`` blocks.

Tensor names and hyperparameter keys are llama.cpp's, taken from the ``gguf`` package
(``gguf.get_tensor_name_map``, ``GGUFWriter.add_*``). Two architectures are mapped: ``llama``
and ``qwen2``. For ``llama`` the rows of ``q_proj`` / ``k_proj`` are reordered per head from
transformers' rotate-half layout to the interleaved pairs llama.cpp's ``llama`` rope expects (a
row permutation, so each row's groups and their scale and zero travel with it); ``qwen2`` uses
the NeoX rope, which is transformers' layout already.

Embeddings and an untied head are written as F16, norms as F32. ``gguf_type='F16'`` writes the
quantized layers dequantized (exact up to fp16, large); the K-quants go through llama.cpp's own
quantizer (:mod:`.gguf_kquant`), which the ``gguf`` package does not provide.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .gguf_q4_1 import check_q4_1, q4_1_blocks
from .gguf_tokenizer import add_tokenizer, pre_tokenizer_name
from .source import PackedTensors, packed_layers

GGUF_INSTALL = "pip install gguf  (or: pip install 'peft-qfa[export]')"
EXACT_TYPES = ("Q4_1", "F16")
"""Types written here; ``Q4_1`` (the default) is exact up to fp16 rounding of the per-block ``d`` and ``m``."""


@dataclass(frozen=True)
class GgufArch:
    """How one transformers ``model_type`` maps onto a llama.cpp architecture."""

    name: str  # gguf.MODEL_ARCH member name
    permute_qk: (
        bool  # llama.cpp's "llama" rope pairs dimensions (2i, 2i+1); transformers' rotate-half does not
    )


ARCHITECTURES: dict[str, GgufArch] = {
    "llama": GgufArch("LLAMA", permute_qk=True),
    "qwen2": GgufArch("QWEN2", permute_qk=False),
}


def _require_gguf():
    try:
        import gguf
    except ImportError as err:
        raise ImportError(f"export(format='gguf') needs the gguf package: {GGUF_INSTALL}") from err
    return gguf


def gguf_arch(config: Any) -> GgufArch:
    """The architecture of ``config``, or an error that names what a new one needs."""
    model_type = getattr(config, "model_type", None)
    if model_type not in ARCHITECTURES:
        raise NotImplementedError(
            f"export(format='gguf'): model_type {model_type!r} has no GGUF mapping; supported: "
            f"{sorted(ARCHITECTURES)}. A new architecture needs an entry in peft_qfa.exporters.gguf.ARCHITECTURES "
            "(its llama.cpp MODEL_ARCH, whether q/k rows are permuted for its rope) and its hyperparameter keys."
        )
    rope = _rope_parameters(config)
    if rope.get("rope_type", "default") != "default":
        raise NotImplementedError(
            f"export(format='gguf'): rope scaling {rope.get('rope_type')!r} is not written yet; only the default rope is."
        )
    return ARCHITECTURES[model_type]


def _rope_parameters(config: Any) -> dict:
    rope = getattr(config, "rope_parameters", None) or {}
    legacy = getattr(config, "rope_scaling", None) or {}
    return {**legacy, **rope}


def _head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def rope_rows(n_heads: int, rows: int) -> torch.Tensor:
    """Row order that turns transformers' rotate-half q/k rows into llama.cpp's interleaved pairs.

    Within a head of ``d`` rows, transformers rotates row ``i`` with row ``i + d/2``; llama.cpp's
    ``llama`` rope rotates rows ``2i`` and ``2i + 1``. New row ``2i + j`` is old row ``i + j * d/2``.
    """
    index = torch.arange(rows).reshape(n_heads, 2, rows // n_heads // 2)
    return index.transpose(1, 2).reshape(rows)


def _permuted(packed: PackedTensors, order: torch.Tensor) -> PackedTensors:
    bias = None if packed.bias is None else packed.bias[order]
    return PackedTensors(
        packed.codes[order], packed.scales[order], packed.zeros[order], bias, packed.bits, packed.group_size
    )


def _add_hparams(writer: Any, config: Any, gguf: Any, file_type: Any) -> None:
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    rope = _rope_parameters(config)
    theta = rope.get("rope_theta", getattr(config, "rope_theta", None))
    if theta is not None:
        writer.add_rope_freq_base(float(theta))
    head_dim = _head_dim(config)
    writer.add_rope_dimension_count(head_dim)
    if head_dim * config.num_attention_heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)
    writer.add_file_type(file_type)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


class _Names:
    """transformers state-dict keys -> llama.cpp tensor names, with an error naming any unmapped key."""

    def __init__(self, gguf: Any, arch: GgufArch, config: Any):
        self.arch = getattr(gguf.MODEL_ARCH, arch.name)
        self.map = gguf.get_tensor_name_map(self.arch, config.num_hidden_layers)
        self.config = config

    def __call__(self, key: str) -> str:
        name = self.map.get_name(key, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise NotImplementedError(
                f"export(format='gguf'): no llama.cpp tensor name for `{key}` in the {self.config.model_type} "
                "architecture; this model has a tensor the GGUF mapping does not know."
            )
        return name


def _float_tensors(model: nn.Module, packed_names: set[str]) -> dict[str, torch.Tensor]:
    state = {}
    for key, tensor in model.state_dict().items():
        if key.rsplit(".", 1)[0] in packed_names:
            continue
        if key == "lm_head.weight" and getattr(model.config, "tie_word_embeddings", False):
            continue  # llama.cpp falls back to token_embd when output.weight is absent
        state[key] = tensor.detach().float().cpu()
    return state


def _quantized_tensor(packed: PackedTensors, name: str, gguf_type: str, gguf: Any) -> tuple[np.ndarray, Any]:
    if gguf_type == "F16":
        return packed.dequantize().half().numpy(), gguf.GGMLQuantizationType.F16
    check_q4_1(name, packed)
    return q4_1_blocks(packed), gguf.GGMLQuantizationType.Q4_1


def gguf_tensors(model: nn.Module, gguf_type: str = "Q4_1") -> dict[str, tuple[np.ndarray, Any]]:
    """``{llama.cpp name: (array, GGML type)}`` of a materialized model: what the file holds."""
    gguf = _require_gguf()
    if gguf_type not in EXACT_TYPES:
        raise ValueError(f"gguf_tensors: gguf_type must be one of {EXACT_TYPES}, got {gguf_type!r}.")
    config = model.config
    arch = gguf_arch(config)
    names = _Names(gguf, arch, config)
    layers = packed_layers(model)
    heads = {
        "q_proj": config.num_attention_heads,
        "k_proj": getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
    }
    out: dict[str, tuple[np.ndarray, Any]] = {}
    for module_name, layer in layers.items():
        packed = PackedTensors.of(layer)
        leaf = module_name.rsplit(".", 1)[-1]
        if arch.permute_qk and leaf in heads:
            packed = _permuted(packed, rope_rows(heads[leaf], packed.codes.shape[0]))
        name = names(f"{module_name}.weight")
        out[name] = _quantized_tensor(packed, module_name, gguf_type, gguf)
        if packed.bias is not None:
            out[names(f"{module_name}.bias")] = (packed.bias.float().numpy(), gguf.GGMLQuantizationType.F32)
    for key, tensor in _float_tensors(model, set(layers)).items():
        if arch.permute_qk and key.rsplit(".", 2)[-2] in heads:  # an unquantized q/k projection
            tensor = tensor[rope_rows(heads[key.rsplit(".", 2)[-2]], tensor.shape[0])]
        if tensor.dim() >= 2:
            out[names(key)] = (tensor.half().numpy(), gguf.GGMLQuantizationType.F16)
        else:
            out[names(key)] = (tensor.numpy(), gguf.GGMLQuantizationType.F32)
    return out


def write_gguf(
    model: nn.Module,
    path: str | os.PathLike,
    tokenizer: Any = None,
    gguf_type: str = "Q4_1",
    tokenizer_pre: str | None = None,
    progress: bool = False,
) -> Path:
    """Write a materialized ``model`` (and ``tokenizer``) as one GGUF file at ``path``; returns the path.

    The file appears under its name only once complete (written beside it, then renamed).
    """
    gguf = _require_gguf()
    tensors = gguf_tensors(model, gguf_type)
    config = model.config
    arch = gguf_arch(config)
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    writer = gguf.GGUFWriter(partial, gguf.MODEL_ARCH_NAMES[getattr(gguf.MODEL_ARCH, arch.name)])
    try:
        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(
            Path(getattr(config, "_name_or_path", "") or "peft-qfa subnet").name or "peft-qfa subnet"
        )
        file_type = gguf.LlamaFileType.MOSTLY_Q4_1 if gguf_type == "Q4_1" else gguf.LlamaFileType.MOSTLY_F16
        _add_hparams(writer, config, gguf, file_type)
        if tokenizer is not None:
            pre = tokenizer_pre or pre_tokenizer_name(config.model_type, len(tokenizer.get_vocab()))
            add_tokenizer(writer, tokenizer, config.vocab_size, pre)
        for name, (array, ggml_type) in tensors.items():
            writer.add_tensor(name, np.ascontiguousarray(array), raw_dtype=ggml_type)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file(progress=progress)
    except BaseException:
        writer.close()
        partial.unlink(missing_ok=True)
        raise
    writer.close()
    os.replace(partial, target)
    return target


__all__ = ["ARCHITECTURES", "EXACT_TYPES", "GgufArch", "gguf_arch", "gguf_tensors", "rope_rows", "write_gguf"]
