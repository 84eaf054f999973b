"""The compact form of a deployed model: 16-bit float tensors, and optionally a packed embedding and head.

Materialization packs the linears; this step decides how the rest is stored. The float tensors
(embeddings, norms, scales and zero points) take ``deploy_dtype`` (:func:`resolve_deploy_dtype`),
and with ``embedding_bits`` the token embedding and the output head become
:class:`QFAPackedEmbedding` / :class:`QFAPackedHead`. A tied head then reads the embedding's codes,
so the saved config turns transformers' own tying off (it would look for a float ``weight``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ..supernet.config import QFAQuantizationConfig
from ..supernet.packed_embedding import EMBEDDING_SEARCH, QFAPackedEmbedding, QFAPackedHead
from ..supernet.storage import resolve_deploy_dtype


def _is_tied(embedding: nn.Module, head: nn.Module | None) -> bool:
    weight, head_weight = getattr(embedding, "weight", None), getattr(head, "weight", None)
    return weight is not None and head_weight is not None and (
        head_weight is weight or head_weight.data_ptr() == weight.data_ptr()
    )


def untie_config(model: nn.Module) -> None:
    """Stop transformers from tying a float head to the (now packed) embedding, on save and on reload."""
    text_config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    text_config.tie_word_embeddings = False
    model.config.tie_word_embeddings = False
    model.all_tied_weights_keys = {}


@torch.no_grad()
def pack_embeddings(model: nn.Module, bits: int, group_size: int) -> bool:
    """Replace the input embedding and the output head by packed ones; returns whether the head is tied."""
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    if isinstance(embedding, QFAPackedEmbedding):
        raise ValueError("pack_embeddings: the embedding is packed already.")
    if head is not None and getattr(head, "bias", None) is not None:
        raise NotImplementedError(
            f"embedding_bits: {type(model).__name__}'s output head has a bias, which QFAPackedHead does not hold "
            "yet; deploy it with embedding_bits=None."
        )
    tied = _is_tied(embedding, head)
    packed = QFAPackedEmbedding.from_float(embedding.weight, bits, group_size)
    model.set_input_embeddings(packed)
    if head is not None:
        table = None if tied else QFAPackedEmbedding.from_float(head.weight, bits, group_size)
        model.set_output_embeddings(QFAPackedHead(tied_to=packed if tied else None, table=table))
    untie_config(model)
    return tied


@contextmanager
@torch.no_grad()
def embedding_rounded_to(model: nn.Module, bits: int | None, group_size: int) -> Iterator[None]:
    """Run ``model`` with its embedding (and a tied head) rounded as ``embedding_bits=bits`` would store it,
    so a search scores subnets as they will be deployed; the float values come back afterwards."""
    if bits is None:
        yield
        return
    tables = {id(t): t for t in (
        model.get_input_embeddings().weight, getattr(model.get_output_embeddings(), "weight", None)
    ) if t is not None}.values()  # a tied head shares the embedding's tensor: rounded once
    originals = [t.detach().clone() for t in tables]
    for table, original in zip(tables, originals, strict=True):
        table.copy_(QFAPackedEmbedding.from_float(original, bits, group_size).quantized().dequantize(table.dtype))
    try:
        yield
    finally:
        for table, original in zip(tables, originals, strict=True):
            table.copy_(original)


@torch.no_grad()
def compact(model: nn.Module, config: QFAQuantizationConfig) -> None:
    """Cast the float tensors to the deploy dtype and pack the embedding when asked; record both in ``config``."""
    dtype = resolve_deploy_dtype(getattr(model.config, "dtype", None), config.deploy_dtype)
    for param in model.parameters():  # not the buffers: rotary frequencies stay float32, as a 16-bit load makes them
        if param.is_floating_point():
            param.data = param.data.to(dtype)
    model.config.dtype = dtype
    config.deploy_dtype = str(dtype).removeprefix("torch.")
    if config.embedding_bits == EMBEDDING_SEARCH:
        raise ValueError(
            "materialize: embedding_bits='search' is chosen by a byte-budget load (from_pretrained(..., budget='80MB')); "
            "give 8, 4 or None here."
        )
    if config.embedding_bits is not None:
        config.tied_head = pack_embeddings(model, config.embedding_bits, config.group_size)


__all__ = ["compact", "embedding_rounded_to", "pack_embeddings", "untie_config"]
