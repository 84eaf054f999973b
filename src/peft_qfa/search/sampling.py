"""Random subnets near a budget: the resource-balanced idea applied to search.

Drawing every group's bit-width uniformly concentrates the average bits near the middle of the
range (the central limit theorem), so a uniform sampler rarely proposes a
subnet near a 2.5- or 3.5-bit budget. Here each group draws from a categorical over its allowed
bit-widths, ``p(b) ∝ exp(λ·b)`` (the maximum-entropy distribution with a given mean,
:mod:`peft_qfa.supernet.tilt`, the same as the training sampler's), with one
``λ`` shared by all groups and solved so that the *expected* cost equals the budget. Draws that
exceed the budget (about half) are rejected, so every returned subnet satisfies it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping

from ..supernet.budget import Budget
from ..supernet.space import SearchSpace, Subnet
from ..supernet.tilt import bisect_increasing, tilted_probabilities
from .cost_table import CostTable

_TILT_LIMIT = 60.0
_BISECTION_STEPS = 80


class BudgetSampler:
    """Draws subnets of ``space`` whose groups keep to ``allowed`` bit-widths, aimed at ``budget``.

    Args:
        space (`SearchSpace`): the space the subnets belong to.
        budget (`Budget`): every returned subnet fits it (checked with ``SearchSpace.cost``).
        table (`CostTable`): the space's cost increments in the budget's unit.
        allowed (`Mapping[str, tuple[int, ...]]`, *optional*):
            A shrunken space: per group, the bit-widths it may take (defaults to all of them).
    """

    def __init__(
        self,
        space: SearchSpace,
        budget: Budget,
        table: CostTable,
        allowed: Mapping[str, tuple[int, ...]] | None = None,
    ):
        self.space = space
        self.budget = budget
        self.table = table
        self.allowed = {g.name: tuple(sorted(allowed[g.name] if allowed else g.bits)) for g in space.groups}
        self.tilt = self._solve_tilt(budget.value)
        self.probabilities = {
            name: tilted_probabilities(bits, self.tilt) for name, bits in self.allowed.items()
        }

    def expected_measure(self, tilt: float) -> float:
        total = self.table.base
        for name, bits in self.allowed.items():
            probs = tilted_probabilities(bits, tilt)
            total += sum(p * self.table.increments[name][b] for p, b in zip(probs, bits, strict=True))
        return total

    def _solve_tilt(self, target: float) -> float:
        low, high = -_TILT_LIMIT, _TILT_LIMIT
        if target <= self.expected_measure(low):
            return low
        if target >= self.expected_measure(high):
            return high
        return bisect_increasing(self.expected_measure, target, low, high, _BISECTION_STEPS)  # cost grows with tilt

    def draw(self, rng: random.Random, probabilities: Mapping[str, list[float]] | None = None) -> Subnet:
        """One subnet from the tilted categoricals (not yet checked against the budget)."""
        probabilities = probabilities or self.probabilities
        return self.space.subnet(
            {name: rng.choices(bits, weights=probabilities[name])[0] for name, bits in self.allowed.items()}
        )

    def sample(
        self,
        n: int,
        rng: random.Random,
        exclude: Iterable[Subnet] = (),
        max_draws_per_subnet: int = 50,
    ) -> list[Subnet]:
        """Up to ``n`` distinct subnets that fit the budget and are not in ``exclude``.

        Fewer come back when the budget leaves few subnets (a budget at the cheapest subnet admits
        only that one): drawing stops after ``n * max_draws_per_subnet`` draws. The draws aim at the
        budget; when they find too few that fit (a budget just under the dearest subnet makes almost
        every draw that subnet), the rest aim lower, halfway to the cheapest subnet and then at it.
        """
        seen = {tuple(s.values()) for s in exclude}
        found: list[Subnet] = []
        cheapest = self.expected_measure(-_TILT_LIMIT)
        targets = (self.budget.value, (self.budget.value + cheapest) / 2, cheapest)
        draws_per_target = math.ceil(n * max_draws_per_subnet / len(targets))
        for index, target in enumerate(targets):
            probabilities = self.probabilities if index == 0 else {
                name: tilted_probabilities(bits, self._solve_tilt(target)) for name, bits in self.allowed.items()
            }
            for _ in range(draws_per_target):
                if len(found) == n:
                    return found
                subnet = self.draw(rng, probabilities)
                key = tuple(subnet.values())
                if key in seen:
                    continue
                seen.add(key)
                if self.budget.fits(self.space.cost(subnet)):
                    found.append(subnet)
        return found


__all__ = ["BudgetSampler", "tilted_probabilities"]
