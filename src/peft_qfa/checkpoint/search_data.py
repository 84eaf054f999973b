"""Search data stored beside a supernet, so that a budget alone is enough to deploy it.

A budget search scores subnets on data. The person who trained the supernet knows what the
model is for and has text the training never saw; the person deploying it may have neither. So
``save_supernet(..., search_data=ids)`` (and ``peft-qfa train``, which holds back the tail of its
data) writes a few thousand token ids into ``qfa_search_data.safetensors`` in the supernet's folder
or Hub repo, and a load with only a budget, ``QFAQuantizationConfig(budget="3.0bits")``, scores
subnets on them (held-out loss). Explicit ``search_data=`` always wins.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from safetensors.torch import load_file, save_file

SEARCH_DATA_NAME = "qfa_search_data.safetensors"


def search_token_ids(token_ids: Any) -> torch.Tensor:
    """``token_ids`` as a ``LongTensor`` after checking it is a 1-D or 2-D integer sequence of 2+ ids."""
    ids = torch.as_tensor(token_ids)
    if ids.dim() not in (1, 2) or ids.numel() < 2 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise ValueError(
            "search_data: expected token ids, a 1-D or 2-D integer tensor with at least 2 tokens; got "
            f"dtype {ids.dtype}, shape {tuple(ids.shape)}. Tokenize texts first."
        )
    return ids.to(torch.long).contiguous()


def save_search_data(folder: str | os.PathLike, token_ids: Any) -> str:
    """Write ``token_ids`` (a 1-D or 2-D sequence of ids) to ``folder/qfa_search_data.safetensors``."""
    path = os.path.join(os.fspath(folder), SEARCH_DATA_NAME)
    save_file({"input_ids": search_token_ids(token_ids)}, path)
    return path


def has_saved_search_data(path: str | os.PathLike) -> bool:
    """Whether the supernet folder or Hub repo ``path`` holds search data (without loading the model)."""
    return _locate(os.fspath(path)) is not None


def _locate(source: str) -> str | None:
    if os.path.isdir(source):
        path = os.path.join(source, SEARCH_DATA_NAME)
        return path if os.path.isfile(path) else None
    from transformers.utils import cached_file

    try:  # a Hub repo id (a path that is neither a folder nor a valid repo id is simply not found)
        return cached_file(
            source,
            SEARCH_DATA_NAME,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except (OSError, ValueError):
        return None


def find_search_data(model: Any, checkpoint_dir: str | None) -> torch.Tensor | None:
    """The token ids saved beside the checkpoint being loaded, or ``None`` when there are none.

    Looks in the folder the weights came from, then in the model's own path or Hub repo (a Hub
    download fetches only the files transformers asks for).
    """
    for source in (checkpoint_dir, getattr(model, "name_or_path", None)):
        path = _locate(source) if source else None
        if path:
            return load_file(path)["input_ids"]
    return None


__all__ = ["SEARCH_DATA_NAME", "find_search_data", "has_saved_search_data", "save_search_data", "search_token_ids"]
