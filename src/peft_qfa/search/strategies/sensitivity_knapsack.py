"""Ours: measured per-group sensitivities, a knapsack over the budget, then a short evolutionary
refinement (tournament selection, crossover and mutation, each child repaired back under the budget)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...supernet.budget import Budget
from ...supernet.space import SearchSpace, Subnet
from ..cost_table import CostTable
from ..evaluators import Evaluator
from ..result import Evaluation
from .base import SearchRun, SearchStrategy
from .knapsack import knapsack


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


__all__ = ["SensitivityKnapsackSearch"]
