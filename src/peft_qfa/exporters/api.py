"""``peft_qfa.export``: a materialized subnet in a format other tools run (HQQ, GGUF) or our own.

One verb for every format; each format's writer lives in its own module and reads the same packed
layers (:mod:`.source`). The input is a materialized model in memory or a folder saved from one.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Literal

from torch import nn

from ..supernet.config import unwrap_model
from .source import load_materialized, packed_layers

FORMATS = ("native", "hqq", "gguf")
"""``native``: our own folder (needs ``import peft_qfa``); ``hqq``: transformers' HQQ serialization;
``gguf``: one llama.cpp file."""


def gguf_types() -> tuple[str, ...]:
    """Every accepted ``gguf_type``: the exact ones first, then llama.cpp's K-quants."""
    from .gguf import EXACT_TYPES
    from .gguf_kquant import KQUANT_TYPES

    return (*EXACT_TYPES, *KQUANT_TYPES)


def _tokenizer_beside(folder: str | os.PathLike, gguf: bool) -> Any:
    """The tokenizer saved with the model, if any; for GGUF only one the file can hold (else a warning)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError):
        return None
    if gguf:
        from .gguf_tokenizer import unsupported_reason

        reason = unsupported_reason(tokenizer)
        if reason is not None:
            warnings.warn(f"export: the GGUF file carries no tokenizer: {reason}.", stacklevel=3)
            return None
    return tokenizer


def export(
    model: nn.Module | str | os.PathLike,
    output: str | os.PathLike,
    format: Literal["native", "hqq", "gguf"] = "gguf",
    *,
    tokenizer: Any = None,
    gguf_type: str = "Q4_1",
    tokenizer_pre: str | None = None,
    progress: bool = False,
) -> Path:
    """Write a materialized subnet as ``format``; returns the folder (native, hqq) or the file (gguf).

    Args:
        model (`nn.Module` or path): a materialized model (:func:`peft_qfa.materialize`) or the folder
            one was saved to. A supernet is refused: materialize a subnet first.
        output (path): the folder to write (``native``, ``hqq``), or the ``.gguf`` file (``gguf``).
        format (`str`): ``"gguf"`` (default), ``"hqq"`` or ``"native"``.
        tokenizer (*optional*): written with the model; defaults to the one in the ``model`` folder.
        gguf_type (`str`, *optional*, defaults to `"Q4_1"`): ``Q4_1`` stores every quantized layer exactly
            (up to fp16 rounding of the block scale and min); ``F16`` stores them dequantized; the K-quants
            (``Q2_K``, ``Q3_K_M``, ...) are smaller and lossy, quantized by llama.cpp (needs llama-cpp-python).
        tokenizer_pre (`str`, *optional*): llama.cpp's pre-tokenizer name; guessed for SmolLM2 and Qwen2.
        progress (`bool`): show a progress bar while writing a GGUF file.

    Example:

    ```python
    >>> packed = peft_qfa.materialize(peft_model, peft_qfa.search_space(peft_model).uniform(3))
    >>> peft_qfa.export(packed, "model-3bit.gguf", format="gguf", tokenizer=tokenizer)
    >>> peft_qfa.export(packed, "model-3bit-hqq/", format="hqq", tokenizer=tokenizer)
    ```
    """
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {FORMATS}, got {format!r}.")
    if format == "gguf" and gguf_type not in gguf_types():
        raise ValueError(f"export: gguf_type must be one of {gguf_types()}, got {gguf_type!r}.")
    if format == "gguf" and Path(output).suffix != ".gguf":
        raise ValueError(
            f"export: a GGUF export is one file; give an output path ending in .gguf, got `{output}`."
        )
    if isinstance(model, (str, os.PathLike)):
        if tokenizer is None:
            tokenizer = _tokenizer_beside(model, gguf=format == "gguf")
        model = load_materialized(model)
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"export: model must be a materialized model or its folder, got {type(model).__name__}."
        )
    model = unwrap_model(model)
    packed_layers(model)  # refuses a supernet or a plain model before anything is written
    if format == "native":
        from ..atomic import atomic_folder

        with atomic_folder(output, "OUTPUT") as staging:
            model.save_pretrained(staging)
            if tokenizer is not None:
                tokenizer.save_pretrained(staging)
        return Path(output)
    if format == "hqq":
        from .hqq import write_hqq

        return write_hqq(model, output, tokenizer)
    from .gguf import EXACT_TYPES, write_gguf

    if gguf_type in EXACT_TYPES:
        return write_gguf(model, output, tokenizer, gguf_type, tokenizer_pre=tokenizer_pre, progress=progress)
    from .gguf_kquant import write_kquant

    return write_kquant(model, output, gguf_type, tokenizer, tokenizer_pre=tokenizer_pre, progress=progress)


__all__ = ["FORMATS", "export", "gguf_types"]
