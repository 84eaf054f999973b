"""The one cost model: average bits and bytes of a subnet, and the supernet's own bytes.

The scheduler (target average bits), the search (budget feasibility) and the model card all call
:func:`subnet_cost` through :meth:`SearchSpace.cost`, so "what a subnet costs" has one answer.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..quant import packed_cols


@dataclass(frozen=True)
class LayerShape:
    """What the cost of one quantized linear depends on."""

    name: str
    out_features: int
    in_features: int
    group_size: int
    scale_bytes: int
    bias_bytes: int

    @property
    def n_params(self) -> int:
        return self.out_features * self.in_features

    def bytes_at(self, bits: int) -> int:
        """Packed codes + scales + zeros (+ bias) of this layer materialized at ``bits``."""
        codes = self.out_features * packed_cols(self.in_features, bits) * 4
        grid = 2 * self.out_features * (self.in_features // self.group_size) * self.scale_bytes
        return codes + grid + self.bias_bytes


@dataclass(frozen=True)
class Cost:
    """``avg_bits``: parameter-weighted code bits over quantized linears (the paper's budget);
    ``bytes``: the whole materialized model (codes, scales, zeros and everything kept in full
    precision)."""

    avg_bits: float
    bytes: int

    def __str__(self) -> str:
        return f"{self.avg_bits:.3f} bits, {self.bytes / 2**20:.1f} MiB"


def subnet_cost(layers: list[LayerShape], layer_bits: dict[str, int], other_bytes: int) -> Cost:
    total_params = sum(layer.n_params for layer in layers)
    weighted = sum(layer.n_params * layer_bits[layer.name] for layer in layers)
    size = other_bytes + sum(layer.bytes_at(layer_bits[layer.name]) for layer in layers)
    return Cost(avg_bits=weighted / total_params, bytes=size)


def supernet_bytes(layers: list[LayerShape], bits_per_layer: dict[str, tuple[int, ...]], other_bytes: int) -> int:
    """Bytes of the supernet itself: every candidate copy of every layer, plus the rest."""
    return other_bytes + sum(
        layer.bytes_at(b) - layer.bias_bytes for layer in layers for b in bits_per_layer[layer.name]
    ) + sum(layer.bias_bytes for layer in layers)
