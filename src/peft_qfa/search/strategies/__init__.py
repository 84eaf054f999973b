"""Search strategies: which subnets to evaluate to find the best one under each budget.

* :class:`TwoStageSearch`: the paper's ``[100, 50]`` search: random subnets
  near the budget, a sensitivity ranking of groups from their correlation with the score, then
  more random subnets in a space shrunk by that ranking.
* :class:`SensitivityKnapsackSearch` (ours): measure each group's sensitivity once (that group
  dropped from its most bits to each fewer bit-width while every other group stays at its most),
  solve a multiple-choice knapsack over the budget (minimise the summed sensitivity; costs from the
  one cost model), then refine the knapsack's answers with a short evolutionary search (crossover
  and mutation, each child repaired back under the budget). The sensitivities are shared by all
  budgets of one run, so a list of budgets costs little more than one.

Both only ever return subnets whose real ``SearchSpace.cost`` fits the budget.
"""

from __future__ import annotations

from torch import nn

from ...supernet.budget import feasible_budgets
from ...supernet.space import SearchSpace
from ..evaluators import Evaluator
from ..result import SearchResult
from .base import SearchRun, SearchStrategy
from .knapsack import knapsack
from .sensitivity_knapsack import SensitivityKnapsackSearch
from .two_stage import TwoStageSearch

STRATEGIES: dict[str, type[SearchStrategy]] = {
    SensitivityKnapsackSearch.name: SensitivityKnapsackSearch,
    TwoStageSearch.name: TwoStageSearch,
}
DEFAULT_STRATEGY = SensitivityKnapsackSearch.name


def make_strategy(strategy: str | SearchStrategy = DEFAULT_STRATEGY, **options) -> SearchStrategy:
    """A strategy instance from its name (``"sensitivity-knapsack"``, ``"two-stage"``) and options."""
    if isinstance(strategy, SearchStrategy):
        if options:
            raise TypeError(
                f"Options {sorted(options)} go to the strategy's constructor, not with an instance."
            )
        return strategy
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown search strategy {strategy!r}; choose one of {sorted(STRATEGIES)}.")
    return STRATEGIES[strategy](**options)


def run_search(
    model: nn.Module,
    space: SearchSpace,
    budgets,
    evaluator: Evaluator,
    strategy: str | SearchStrategy = DEFAULT_STRATEGY,
    **options,
) -> SearchResult:
    """Search ``space`` of ``model`` for the best subnet under each of ``budgets`` (one or a list)."""
    return make_strategy(strategy, **options).run(model, space, feasible_budgets(space, budgets), evaluator)


__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "SearchRun",
    "SearchStrategy",
    "SensitivityKnapsackSearch",
    "TwoStageSearch",
    "knapsack",
    "make_strategy",
    "run_search",
]
