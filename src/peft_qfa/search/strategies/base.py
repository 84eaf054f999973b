"""The search machinery every strategy shares: :class:`SearchRun` (the model, space, evaluator, cost
tables and the record of every subnet evaluated) and :class:`SearchStrategy` (the loop over budgets)."""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Sequence

from torch import nn
from tqdm.auto import tqdm
from transformers.utils.logging import is_progress_bar_enabled

from ...supernet.budget import Budget
from ...supernet.space import SearchSpace, Subnet
from ..cost_table import CostTable
from ..evaluators import Evaluator
from ..result import BudgetChoice, Evaluation, SearchResult


class SearchRun:
    """Shared state of one search: the model, its space, the evaluator, cost tables and the record
    of every subnet evaluated."""

    def __init__(
        self,
        model: nn.Module,
        space: SearchSpace,
        evaluator: Evaluator,
        seed: int,
        progress: tqdm | None = None,
        count: Callable[[], int] | None = None,
    ):
        """``count`` reads the forward passes made so far, helper evaluators included (default: the
        evaluator's own count)."""
        self.model = model
        self.space = space
        self.evaluator = evaluator
        self.rng = random.Random(seed)
        self.records: dict[tuple[int, ...], Evaluation] = {}
        self._tables: dict[str, CostTable] = {}
        self.progress = progress
        self._count = count or (lambda: evaluator.n_evaluations)
        self._first_count = self._count()

    def n_evaluations(self) -> int:
        """Forward-pass evaluations made since this run began (cache hits excluded)."""
        return self._count() - self._first_count

    def advance(self, **postfix) -> None:
        """Move the progress bar to the number of forward-pass evaluations made so far."""
        if self.progress is not None:
            self.progress.update(self.n_evaluations() - self.progress.n)
            if postfix:
                self.progress.set_postfix(postfix, refresh=False)

    def table(self, kind: str) -> CostTable:
        if kind not in self._tables:
            self._tables[kind] = CostTable.from_space(self.space, kind)
        return self._tables[kind]

    def score(self, subnet: Subnet) -> float:
        value = self.evaluator.evaluate(self.model, subnet)
        key = tuple(subnet.values())
        if key not in self.records:
            self.records[key] = Evaluation(subnet, self.space.cost(subnet), value)
        self.advance()
        return value

    def best_fitting(self, budget: Budget) -> Evaluation | None:
        """The best evaluated subnet that fits ``budget`` (ties: the cheaper one)."""
        best = None
        for record in self.records.values():
            if not budget.fits(record.cost):
                continue
            if (
                best is None
                or self.evaluator.better(record.score, best.score)
                or (record.score == best.score and budget.measure(record.cost) < budget.measure(best.cost))
            ):
                best = record
        return best

    def best_uniform(self, budget: Budget) -> Subnet | None:
        """The most-bits uniform subnet that fits ``budget`` (``None`` if the groups share no bit-width)."""
        shared = set.intersection(*(set(g.bits) for g in self.space.groups))
        for bits in sorted(shared, reverse=True):
            subnet = self.space.uniform(bits)
            if budget.fits(self.space.cost(subnet)):
                return subnet
        return None


class SearchStrategy:
    """Base class: :meth:`run` loops over the budgets and times them; subclasses implement
    :meth:`search_budget`, which evaluates subnets through ``run.score``."""

    name = "strategy"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def prepare(self, run: SearchRun, budgets: Sequence[Budget]) -> None:
        """Work shared by all budgets of one run (nothing by default)."""

    def search_budget(self, run: SearchRun, budget: Budget) -> None:
        raise NotImplementedError

    def bind(self, evaluator: Evaluator) -> None:
        """Set up what a run with ``evaluator`` needs before anything is counted (nothing by default)."""

    def helper_evaluators(self) -> list[Evaluator]:
        """Evaluators other than the search's own that the strategy runs (their work is counted too)."""
        return []

    def expected_evaluations(self, space: SearchSpace, n_budgets: int) -> int:
        """About how many evaluations :meth:`run` makes (the progress bar's total)."""
        return 0

    def _evaluations(self, evaluator: Evaluator) -> int:
        return evaluator.n_evaluations + sum(e.n_evaluations for e in self.helper_evaluators())

    def run(
        self, model: nn.Module, space: SearchSpace, budgets: Sequence[Budget], evaluator: Evaluator
    ) -> SearchResult:
        """Search ``space`` for each of ``budgets``, typed and already checked against ``space``
        (:func:`~peft_qfa.supernet.budget.feasible_budgets`, which :func:`run_search` calls)."""
        self.bind(evaluator)
        progress = tqdm(
            total=self.expected_evaluations(space, len(budgets)) or None,
            desc=f"search ({self.name})",
            unit="subnet",
            disable=not is_progress_bar_enabled(),
        )
        run = SearchRun(
            model, space, evaluator, self.seed, progress, functools.partial(self._evaluations, evaluator)
        )
        try:
            return self._run(run, budgets, time.perf_counter())
        finally:
            progress.close()
            evaluator.release()  # the float weight copies; scores stay cached

    def _run(self, run: SearchRun, budgets: Sequence[Budget], start: float) -> SearchResult:
        evaluator = run.evaluator
        self.prepare(run, budgets)
        shared_seconds = time.perf_counter() - start
        shared_evaluations = run.n_evaluations()
        choices = []
        for budget in budgets:
            budget_start, evaluations_before = time.perf_counter(), run.n_evaluations()
            run.advance(budget=str(budget))
            self.search_budget(run, budget)
            best = run.best_fitting(budget)
            if best is None:  # cannot happen after check_feasible, unless a strategy evaluated nothing
                raise RuntimeError(f"{type(self).__name__} evaluated no subnet that fits {budget}.")
            # shared work (e.g. sensitivities) is charged to every budget in equal parts
            choices.append(
                BudgetChoice(
                    budget=budget,
                    subnet=best.subnet,
                    cost=best.cost,
                    score=best.score,
                    n_evaluations=run.n_evaluations()
                    - evaluations_before
                    + math.ceil(shared_evaluations / len(budgets)),
                    seconds=time.perf_counter() - budget_start + shared_seconds / len(budgets),
                )
            )
        return SearchResult(
            strategy=self.name,
            metric=evaluator.name,
            higher_is_better=evaluator.higher_is_better,
            choices=choices,
            evaluations=list(run.records.values()),
            n_evaluations=run.n_evaluations(),
            seconds=time.perf_counter() - start,
        )


__all__ = ["SearchRun", "SearchStrategy"]
