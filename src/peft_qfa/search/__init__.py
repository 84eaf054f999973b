"""Subnet search: budgets, evaluators (forward passes only) and strategies, with the Pareto front as data."""

from ..supernet.budget import Budget, check_feasible, feasible_range, parse_budgets
from .api import search_subnet
from .evaluators import CallableEvaluator, Evaluator, LossEvaluator, MultipleChoiceEvaluator, make_evaluator
from .plot import plot_pareto
from .result import BudgetChoice, Evaluation, SearchResult
from .strategies import (
    DEFAULT_STRATEGY,
    STRATEGIES,
    SearchStrategy,
    SensitivityKnapsackSearch,
    TwoStageSearch,
    make_strategy,
    run_search,
)

__all__ = [
    "DEFAULT_STRATEGY",
    "STRATEGIES",
    "Budget",
    "BudgetChoice",
    "CallableEvaluator",
    "Evaluation",
    "Evaluator",
    "LossEvaluator",
    "MultipleChoiceEvaluator",
    "SearchResult",
    "SearchStrategy",
    "SensitivityKnapsackSearch",
    "TwoStageSearch",
    "check_feasible",
    "feasible_range",
    "make_evaluator",
    "make_strategy",
    "parse_budgets",
    "plot_pareto",
    "run_search",
    "search_subnet",
]
