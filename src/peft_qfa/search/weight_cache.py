"""Dequantized weights kept across a search's evaluations.

A search runs hundreds of forward passes of the same supernet, each at some subnet. Without a
kernel (on a CPU) every forward pass unpacks and dequantizes every layer's active copy again, which
costs about as much as the matrix products themselves. A layer has only a few bit-widths, so the
float weight of each (layer, bit-width) is computed once and reused while the cache is active:
same numbers as the torch path (``dequantize`` then ``F.linear``), bounded memory (``max_bytes``;
past it, weights are dequantized per call as before).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

from ..ops import use_weight_cache
from ..supernet.layer import BitSelectableLayer

DEFAULT_MAX_BYTES = 4 * 2**30


class DequantizedWeightCache:
    """Float copies of supernet weights, one per (layer, bit-width, dtype), up to ``max_bytes``."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES):
        self.max_bytes = int(max_bytes)
        self.weights: dict[tuple[int, int, torch.dtype], torch.Tensor] = {}
        self.nbytes = 0

    def clear(self) -> None:
        self.weights.clear()
        self.nbytes = 0

    def weight(self, layer: BitSelectableLayer, dtype: torch.dtype) -> torch.Tensor:
        key = (id(layer), layer.active_bits, dtype)
        cached = self.weights.get(key)
        if cached is not None:
            return cached
        weight = layer.quantized().dequantize(dtype)
        size = weight.numel() * weight.element_size()
        if self.nbytes + size <= self.max_bytes:
            self.weights[key] = weight
            self.nbytes += size
        return weight

    @contextlib.contextmanager
    def active(self, model: nn.Module | None = None) -> Iterator[None]:
        """Within the block, supernet layers compute with cached float weights (through the backend
        dispatcher, :func:`peft_qfa.ops.use_weight_cache`; no layer's ``forward`` is replaced).
        ``model`` is accepted for symmetry with earlier releases and not needed."""
        if self.max_bytes <= 0:
            yield
            return
        with use_weight_cache(self):
            yield


__all__ = ["DEFAULT_MAX_BYTES", "DequantizedWeightCache"]
