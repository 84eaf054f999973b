"""Search strategies: which subnets to evaluate to find the best one under each budget.

* :class:`TwoStageSearch`: the paper's ``[100, 50]`` search (methods-digest §1.7): random subnets
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

import functools
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence

from torch import nn
from tqdm.auto import tqdm
from transformers.utils.logging import is_progress_bar_enabled

from ..supernet.budget import Budget, feasible_budgets
from ..supernet.space import SearchSpace, Subnet
from .cost_table import CostTable
from .evaluators import Evaluator
from .result import BudgetChoice, Evaluation, SearchResult
from .sampling import BudgetSampler


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


# ------------------------------------------------------------------------------------------ the paper's
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
    """The paper's two-stage search (methods-digest §1.7), one run per budget.

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


# ------------------------------------------------------------------------------------------ ours
def knapsack(
    groups: Sequence[str],
    options: Mapping[str, Mapping[int, tuple[float, float]]],
    capacity: float,
    n_solutions: int = 1,
    max_states: int = 4096,
    tolerance: float = 0.0,
) -> list[dict[str, int]]:
    """Multiple-choice knapsack: one bit-width per group, summed cost ``<= capacity``, least summed loss.

    ``options[group][bits] = (cost, loss)``. Solved exactly by dynamic programming over the Pareto
    front of (cost, loss) partial assignments, with back-pointers instead of copied assignments; if
    the front outgrows ``max_states`` it is thinned to the best state per cost bucket. Returns up to
    ``n_solutions`` assignments from the final front, least loss first (the runners-up are slightly
    cheaper alternatives, useful seeds for a refinement).
    """
    front: list[tuple[float, float, int, int]] = [(0.0, 0.0, -1, -1)]  # (cost, loss, parent, bits)
    history: list[list[tuple[float, float, int, int]]] = []
    for group in groups:
        extended = [
            (cost + c, loss + lo, parent, bits)
            for parent, (cost, loss, _, _) in enumerate(front)
            for bits, (c, lo) in options[group].items()
            if cost + c <= capacity + tolerance
        ]
        extended.sort(key=lambda s: (s[0], s[1]))
        pruned, best_loss = [], math.inf
        for state in extended:
            if state[1] < best_loss:
                pruned.append(state)
                best_loss = state[1]
        if len(pruned) > max_states:
            width = (pruned[-1][0] - pruned[0][0]) / max_states or 1.0
            buckets: dict[int, tuple[float, float, int, int]] = {}
            for state in pruned:
                bucket = int((state[0] - pruned[0][0]) / width)
                if bucket not in buckets or state[1] < buckets[bucket][1]:
                    buckets[bucket] = state
            pruned = sorted(buckets.values())
        history.append(pruned)
        front = pruned
    solutions = []
    for index in sorted(range(len(front)), key=lambda i: front[i][1])[:n_solutions]:
        assignment: dict[str, int] = {}
        for depth in range(len(groups) - 1, -1, -1):
            _, _, parent, bits = history[depth][index]
            assignment[groups[depth]] = bits
            index = parent
        solutions.append(assignment)
    return solutions


class SensitivityKnapsackSearch(SearchStrategy):
    """Ours: measured per-group sensitivities, a knapsack over the budget, a short evolutionary refinement.

    Args:
        population (`int`, *optional*, defaults to 8): parents kept between generations.
        generations (`int`, *optional*, defaults to 2): evolutionary rounds per budget (0: knapsack only).
        children (`int`, *optional*, defaults to 6): new subnets evaluated per generation.
        knapsack_solutions (`int`, *optional*, defaults to 4): knapsack answers evaluated as seeds.
        mutation_rate (`float`, *optional*, defaults to 0.1): per-group chance that a child's bits are redrawn.
        probe_evaluator (`Evaluator`, *optional*): scores the sensitivity probes instead of the search's
            evaluator: the probes only rank groups, and they are most of the evaluations. Candidates
            are always scored by the search's own evaluator.
        probe_fraction (`float`, *optional*, defaults to 0.5): without ``probe_evaluator``, the probes
            are scored on this share of the search evaluator's data when it can be cut
            (:meth:`Evaluator.head`: a held-out loss keeps its first windows); 1.0 probes on all of it.
        seed (`int`, *optional*, defaults to 0).

    Cost in evaluations: ``1 + sum(len(bits) - 1 for each group)`` probes once (the sensitivities),
    then about ``knapsack_solutions + 1 + generations * children`` per budget. The defaults are the
    settings of the search benchmark (BENCHMARKS.md): under 5 minutes per budget for SmolLM2 on one
    CPU thread with 2,048 search tokens.
    """

    name = "sensitivity-knapsack"

    def __init__(
        self,
        population: int = 8,
        generations: int = 2,
        children: int = 6,
        knapsack_solutions: int = 4,
        mutation_rate: float = 0.1,
        seed: int = 0,
        probe_evaluator: Evaluator | None = None,
        probe_fraction: float = 0.5,
    ):
        super().__init__(seed)
        if (
            population < 2
            or generations < 0
            or children < 1
            or knapsack_solutions < 1
            or not 0 < mutation_rate <= 1
            or not 0 < probe_fraction <= 1
        ):
            raise ValueError(
                "SensitivityKnapsackSearch: need population >= 2, generations >= 0, children >= 1, "
                "knapsack_solutions >= 1, 0 < mutation_rate <= 1 and 0 < probe_fraction <= 1; got "
                f"population={population}, generations={generations}, children={children}, "
                f"knapsack_solutions={knapsack_solutions}, mutation_rate={mutation_rate}, "
                f"probe_fraction={probe_fraction}."
            )
        self.population = population
        self.generations = generations
        self.children = children
        self.knapsack_solutions = knapsack_solutions
        self.mutation_rate = mutation_rate
        self.probe_evaluator = probe_evaluator
        self.probe_fraction = probe_fraction
        self._probes: Evaluator | None = probe_evaluator  # this run's: given, or cut from the search's
        self.sensitivity: dict[str, dict[int, float]] = {}

    def bind(self, evaluator: Evaluator) -> None:
        self._probes = self.probe_evaluator
        if self._probes is None and self.probe_fraction < 1:
            self._probes = evaluator.head(self.probe_fraction)

    # -------------------------------------------------------------- shared: sensitivities
    def prepare(self, run: SearchRun, budgets: Sequence[Budget]) -> None:
        """``sensitivity[group][bits]``: the quality lost when only ``group`` drops to ``bits``."""
        space = run.space
        probes = self._probes
        if probes is None:
            probe_score, probe_quality = run.score, run.evaluator.quality
        else:
            probe_quality = probes.quality

            def probe_score(subnet: Subnet) -> float:
                return probes.evaluate(run.model, subnet)

        top = {g.name: max(g.bits) for g in space.groups}
        reference = probe_quality(probe_score(space.subnet(top)))
        self.sensitivity = {}
        try:
            for group in space.groups:
                self.sensitivity[group.name] = {max(group.bits): 0.0}
                for bits in group.bits[:-1]:
                    probe = space.subnet({**top, group.name: bits})
                    self.sensitivity[group.name][bits] = reference - probe_quality(probe_score(probe))
                    run.advance(stage="sensitivities")
        finally:
            if probes is not None:
                probes.release()

    def helper_evaluators(self) -> list[Evaluator]:
        return [self._probes] if self._probes is not None else []

    def expected_evaluations(self, space: SearchSpace, n_budgets: int) -> int:
        probes = 1 + sum(len(g.bits) - 1 for g in space.groups)
        per_budget = self.knapsack_solutions + 1 + self.generations * self.children
        return probes + per_budget * n_budgets

    # -------------------------------------------------------------- per budget
    def search_budget(self, run: SearchRun, budget: Budget) -> None:
        table = run.table(budget.kind)
        names = run.space.group_names
        options = {
            name: {
                b: (table.increments[name][b], self.sensitivity[name][b]) for b in run.space.group(name).bits
            }
            for name in names
        }
        capacity = budget.value - table.base
        tolerance = 1e-9 if budget.kind == "bits" else 0.0
        seeds = [
            run.space.subnet(a)
            for a in knapsack(names, options, capacity, self.knapsack_solutions, tolerance=tolerance)
        ]
        uniform = run.best_uniform(budget)
        if uniform is not None:
            seeds.append(uniform)
        for subnet in seeds:
            if budget.fits(run.space.cost(subnet)):
                run.score(subnet)
        for _ in range(self.generations):
            parents = self._population(run, budget)
            if len(parents) < 2:
                break
            for child in self._children(run, budget, table, parents):
                run.score(child)

    def _population(self, run: SearchRun, budget: Budget) -> list[Evaluation]:
        fitting = [r for r in run.records.values() if budget.fits(r.cost)]
        fitting.sort(key=lambda r: run.evaluator.quality(r.score), reverse=True)
        return fitting[: self.population]

    @staticmethod
    def _tournament(run: SearchRun, parents: list[Evaluation]) -> Evaluation:
        """The better of two random parents."""
        return max(run.rng.sample(parents, 2), key=lambda r: run.evaluator.quality(r.score))

    def _children(
        self, run: SearchRun, budget: Budget, table: CostTable, parents: list[Evaluation]
    ) -> list[Subnet]:
        rng, space = run.rng, run.space
        known = set(run.records)
        children: list[Subnet] = []
        for _ in range(self.children * 20):
            if len(children) == self.children:
                break
            mother, father = (self._tournament(run, parents) for _ in range(2))
            bits = {
                name: (mother if rng.random() < 0.5 else father).subnet[name] for name in space.group_names
            }
            mutated = set()
            for group in space.groups:
                if rng.random() < self.mutation_rate:
                    bits[group.name] = rng.choice(group.bits)
                    mutated.add(group.name)
            child = space.subnet(self._repair(space, budget, table, bits, locked=mutated))
            key = tuple(child.values())
            if key in known or not budget.fits(space.cost(child)):
                continue
            known.add(key)
            children.append(child)
        return children

    def _repair(
        self, space: SearchSpace, budget: Budget, table: CostTable, bits: dict[str, int], locked: set[str]
    ) -> dict[str, int]:
        """Bring ``bits`` under the budget (cheapest sensitivity per unit of cost saved first), then spend
        any slack (most sensitivity recovered per unit of cost first). ``locked`` groups (just
        mutated) move only when nothing else can."""
        bits = dict(bits)
        slack = 1e-9 if budget.kind == "bits" else 0.0

        def lower_step(name):
            options = [b for b in space.group(name).bits if b < bits[name]]
            return max(options) if options else None

        def higher_step(name):
            options = [b for b in space.group(name).bits if b > bits[name]]
            return min(options) if options else None

        while table.predict(bits) > budget.value + slack:
            moves = []
            for name in space.group_names:
                new = lower_step(name)
                if new is None:
                    continue
                saved = -table.step(name, bits[name], new)
                lost = self.sensitivity[name][new] - self.sensitivity[name][bits[name]]
                moves.append((name in locked, lost / saved if saved > 0 else math.inf, name, new))
            if not moves:
                break
            _, _, name, new = min(moves)
            bits[name] = new
        while True:
            moves = []
            for name in space.group_names:
                new = higher_step(name)
                if new is None or name in locked:
                    continue
                extra = table.step(name, bits[name], new)
                if table.predict(bits) + extra > budget.value + slack:
                    continue
                gained = self.sensitivity[name][bits[name]] - self.sensitivity[name][new]
                moves.append((gained / extra if extra > 0 else math.inf, name, new))
            if not moves:
                break
            _, name, new = max(moves)
            bits[name] = new
        return bits


# ------------------------------------------------------------------------------------------ the verb
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
