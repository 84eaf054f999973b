"""Lossy GGUF K-quants (``Q2_K``, ``Q3_K_M``, ...) through llama.cpp's own quantizer.

The ``gguf`` package can read K-quant blocks but not write them (its ``quants`` module has no
K-quant quantizer), so the exact ``Q4_1`` file is written first and llama.cpp's
``llama_model_quantize`` (from ``llama-cpp-python``) requantizes it: each block is dequantized to
our weights (up to fp16) and quantized again on llama.cpp's grid, with llama.cpp's usual
per-tensor mixture (embeddings and some ``attn_v`` / ``ffn_down`` tensors kept at more bits). The
result is smaller than ``Q4_1`` but no longer our subnet's weights: measure its perplexity.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from .gguf import write_gguf

LLAMA_CPP_INSTALL = "pip install llama-cpp-python  (or: pip install 'peft-qfa[export]')"
KQUANT_TYPES: dict[str, str] = {
    "Q2_K": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "Q3_K_S": "LLAMA_FTYPE_MOSTLY_Q3_K_S",
    "Q3_K_M": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "Q3_K_L": "LLAMA_FTYPE_MOSTLY_Q3_K_L",
    "Q4_K_S": "LLAMA_FTYPE_MOSTLY_Q4_K_S",
    "Q4_K_M": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "Q5_K_M": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
    "Q6_K": "LLAMA_FTYPE_MOSTLY_Q6_K",
}
"""``gguf_type`` -> llama.cpp's file type constant."""


def _require_llama_cpp():
    try:
        import llama_cpp
    except ImportError as err:
        raise ImportError(
            f"export(format='gguf', gguf_type=K-quant) quantizes with llama.cpp and needs llama-cpp-python: "
            f"{LLAMA_CPP_INSTALL}; the exact default gguf_type='Q4_1' needs only gguf."
        ) from err
    return llama_cpp


def write_kquant(
    model: nn.Module, path: str | os.PathLike, gguf_type: str, tokenizer: Any = None, **kwargs: Any
) -> Path:
    """Write ``model`` as a ``gguf_type`` K-quant GGUF file at ``path``; returns the path."""
    if gguf_type not in KQUANT_TYPES:
        raise ValueError(f"write_kquant: gguf_type must be one of {sorted(KQUANT_TYPES)}, got {gguf_type!r}.")
    llama_cpp = _require_llama_cpp()
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        exact = write_gguf(model, Path(scratch) / "exact.gguf", tokenizer, "Q4_1", **kwargs)
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, KQUANT_TYPES[gguf_type])
        params.allow_requantize = True
        status = llama_cpp.llama_model_quantize(str(exact).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        partial.unlink(missing_ok=True)
        raise RuntimeError(
            f"export: llama.cpp's quantizer failed ({status}) writing {gguf_type} to {target}."
        )
    os.replace(partial, target)
    return target


__all__ = ["KQUANT_TYPES", "write_kquant"]
