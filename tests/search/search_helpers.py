"""Helpers of the search tests (a plain module, importable by name from the test files and conftest).

A *shape-only supernet* has the layers, shapes and candidate bits of a real one but no weights: its
score is a known function of the active bits. Searches run on it through the real machinery
(``SearchSpace.from_model``, ``use_subnet``, the evaluator cache) in microseconds, which is what
property tests over many random spaces and budgets need.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from peft_qfa.supernet.layer import BitSelectableLayer, find_bit_layers

GROUP_SIZE = 32


class ShapeOnlyLayer(BitSelectableLayer):
    """A bit-selectable layer with a shape and candidate bits but no weights."""

    def __init__(
        self, in_features: int, out_features: int, bits: tuple[int, ...], group_size: int = GROUP_SIZE
    ):
        super().__init__()
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.candidate_bits = tuple(sorted(bits))
        self._active_bits = max(self.candidate_bits)
        self.bias = None

    def quantized(self, bits=None):
        return SimpleNamespace(scales=torch.empty(0, dtype=torch.float16))


class ShapeOnlySupernet(nn.Module):
    """Decoder-like blocks ``model.layers.{i}.{proj}`` of shape-only layers plus a float embedding."""

    def __init__(
        self, blocks: list[list[tuple[int, int]]], bits: tuple[int, ...], vocab: int = 16, hidden: int = 8
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.layers = nn.ModuleList(
            nn.ModuleDict({f"proj{j}": ShapeOnlyLayer(i, o, bits) for j, (i, o) in enumerate(block)})
            for block in blocks
        )


def additive_score(sensitivity: dict[str, dict[int, float]]):
    """A loss that is a sum of per-layer terms of the active bits (so the best subnet is a knapsack optimum)."""

    def loss(model: nn.Module) -> float:
        return sum(sensitivity[name][layer.active_bits] for name, layer in find_bit_layers(model).items())

    return loss
