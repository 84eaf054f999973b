"""Per-group cost increments, read off the one cost model, for samplers and the knapsack.

Search strategies need to *plan* with costs (aim a sampler at a budget, solve a knapsack) without
calling :meth:`SearchSpace.cost` for every partial assignment. The table holds, for each group
and bit-width, how much that choice adds over the group's cheapest option, measured once with
``SearchSpace.cost``. The cost model is a sum over layers, so these increments add up exactly
(up to float rounding); a plan is still *accepted* only after :meth:`Budget.fits` has checked its
real ``SearchSpace.cost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..supernet.budget import Budget, extreme_subnets
from ..supernet.space import SearchSpace


@dataclass(frozen=True)
class CostTable:
    """``base``: the cheapest subnet's measure; ``increments[group][bits]``: what ``bits`` adds for ``group``."""

    kind: str
    base: float
    increments: dict[str, dict[int, float]]

    @classmethod
    def from_space(cls, space: SearchSpace, kind: str) -> CostTable:
        probe = Budget(kind, 0.0)
        cheapest, _ = extreme_subnets(space)
        base = probe.measure(space.cost(cheapest))
        increments: dict[str, dict[int, float]] = {}
        for group in space.groups:
            increments[group.name] = {}
            for bits in group.bits:
                one_changed = space.subnet({**cheapest, group.name: bits})
                increments[group.name][bits] = probe.measure(space.cost(one_changed)) - base
        return cls(kind, base, increments)

    def predict(self, bits: Mapping[str, int]) -> float:
        """Planned measure of a full assignment ``{group: bits}``."""
        return self.base + sum(self.increments[group][b] for group, b in bits.items())

    def step(self, group: str, old_bits: int, new_bits: int) -> float:
        """Change of the measure when ``group`` moves from ``old_bits`` to ``new_bits``."""
        return self.increments[group][new_bits] - self.increments[group][old_bits]


__all__ = ["CostTable"]
