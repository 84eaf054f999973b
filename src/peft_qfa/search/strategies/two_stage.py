"""The paper's two-stage search: random subnets near the budget, a sensitivity ranking of groups from
their correlation with the score, then more random subnets in a space shrunk by that ranking."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...supernet.budget import Budget
from ...supernet.space import SearchSpace, Subnet
from ..sampling import BudgetSampler
from .base import SearchRun, SearchStrategy


def _correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Pearson correlation; 0 when either side is constant."""
    n = len(xs)
    if n < 2:
        return 0.0
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    cov = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True))
    var_x = sum((x - mean_x) ** 2 for x in xs)
    var_y = sum((y - mean_y) ** 2 for y in ys)
    return cov / math.sqrt(var_x * var_y) if var_x > 0 and var_y > 0 else 0.0


class TwoStageSearch(SearchStrategy):
    """The paper's two-stage search (LLM-QFA, https://arxiv.org/abs/2405.20202), one run per budget.

    Args:
        n_random (`int`, *optional*, defaults to 100): random subnets of the coarse stage.
        n_refine (`int`, *optional*, defaults to 50): random subnets in the shrunken space.
        shrink_fraction (`float`, *optional*, defaults to 0.25): the share of groups whose options
            are cut: the most sensitive ones lose their fewest-bits option, the least sensitive
            ones their most-bits option (a group keeps at least one option).
        seed (`int`, *optional*, defaults to 0).

    Random subnets come from :class:`BudgetSampler` (expected cost = the budget; draws over the
    budget are rejected). A group's sensitivity is the correlation between its bit-width and the
    score's quality over the coarse stage's subnets.
    """

    name = "two-stage"

    def __init__(self, n_random: int = 100, n_refine: int = 50, shrink_fraction: float = 0.25, seed: int = 0):
        super().__init__(seed)
        if n_random < 1 or n_refine < 0 or not 0 <= shrink_fraction <= 0.5:
            raise ValueError(
                f"TwoStageSearch: need n_random >= 1, n_refine >= 0 and 0 <= shrink_fraction <= 0.5; got "
                f"n_random={n_random}, n_refine={n_refine}, shrink_fraction={shrink_fraction}."
            )
        self.n_random = n_random
        self.n_refine = n_refine
        self.shrink_fraction = shrink_fraction

    def expected_evaluations(self, space: SearchSpace, n_budgets: int) -> int:
        return (self.n_random + self.n_refine) * n_budgets

    def search_budget(self, run: SearchRun, budget: Budget) -> None:
        table = run.table(budget.kind)
        coarse = BudgetSampler(run.space, budget, table).sample(self.n_random, run.rng)
        scores = [run.score(s) for s in coarse]
        allowed = self.shrunken_space(run, budget, table, coarse, scores)
        refine = BudgetSampler(run.space, budget, table, allowed).sample(
            self.n_refine, run.rng, exclude=coarse
        )
        for subnet in refine:
            run.score(subnet)

    def sensitivities(
        self, run: SearchRun, subnets: Sequence[Subnet], scores: Sequence[float]
    ) -> dict[str, float]:
        qualities = [run.evaluator.quality(s) for s in scores]
        return {g.name: _correlation([s[g.name] for s in subnets], qualities) for g in run.space.groups}

    def shrunken_space(self, run, budget, table, subnets, scores) -> dict[str, tuple[int, ...]]:
        sensitivity = self.sensitivities(run, subnets, scores)
        ranked = sorted(run.space.group_names, key=lambda g: sensitivity[g], reverse=True)
        k = math.ceil(self.shrink_fraction * len(ranked)) if len(ranked) > 1 else 0
        while True:
            allowed = {g.name: g.bits for g in run.space.groups}
            for name in ranked[:k]:  # most sensitive: never at their fewest bits
                allowed[name] = allowed[name][1:] or allowed[name]
            for name in ranked[len(ranked) - k :] if k else []:  # least sensitive: never at their most bits
                allowed[name] = allowed[name][:-1] or allowed[name]
            cheapest = {name: min(bits) for name, bits in allowed.items()}
            if k == 0 or table.predict(cheapest) <= budget.value:
                return allowed
            k -= 1  # the cut left nothing under the budget: cut fewer groups


__all__ = ["TwoStageSearch"]
