"""What a search returns: the best subnet per budget and everything it evaluated, as data.

The Pareto front (cost against score over every evaluated subnet) is the answer to "what else
could I deploy": a search is run for a few budgets, but its evaluations cover many more costs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..supernet.budget import Budget
from ..supernet.cost import Cost
from ..supernet.space import SearchSpace, Subnet


@dataclass(frozen=True)
class Evaluation:
    """One evaluated subnet: its cost (from the one cost model) and its score."""

    subnet: Subnet
    cost: Cost
    score: float

    def to_dict(self) -> dict:
        return {
            "bits": dict(self.subnet),
            "avg_bits": self.cost.avg_bits,
            "bytes": self.cost.bytes,
            "score": self.score,
        }


@dataclass(frozen=True)
class BudgetChoice:
    """The best subnet found for one budget, and what finding it cost."""

    budget: Budget
    subnet: Subnet
    cost: Cost
    score: float
    n_evaluations: int
    seconds: float

    def to_dict(self) -> dict:
        return {
            "budget": str(self.budget),
            "bits": dict(self.subnet),
            "avg_bits": self.cost.avg_bits,
            "bytes": self.cost.bytes,
            "score": self.score,
            "n_evaluations": self.n_evaluations,
            "seconds": self.seconds,
        }


@dataclass
class SearchResult:
    """Best subnet per budget (``choices``, in the order the budgets were given) plus every evaluation.

    ``n_evaluations`` counts real evaluations (cache hits excluded; a strategy's helper evaluators,
    such as sensitivity probes on fewer tokens, included); ``seconds`` is the wall time of the whole
    search. Each choice carries its budget's share of work done once for all budgets.
    """

    strategy: str
    metric: str
    higher_is_better: bool
    choices: list[BudgetChoice]
    evaluations: list[Evaluation] = field(default_factory=list)
    n_evaluations: int = 0
    seconds: float = 0.0

    def best(self, budget: Budget | float | str | None = None) -> BudgetChoice:
        """The choice for ``budget`` (optional when the search had a single budget)."""
        if budget is None:
            if len(self.choices) != 1:
                raise ValueError(
                    f"SearchResult holds {len(self.choices)} budgets ({', '.join(str(c.budget) for c in self.choices)}); "
                    "pass the one you want to `best(budget)`."
                )
            return self.choices[0]
        wanted = Budget.parse(budget)
        for choice in self.choices:
            if choice.budget == wanted:
                return choice
        raise KeyError(
            f"No search result for budget {wanted}; searched {[str(c.budget) for c in self.choices]}."
        )

    @property
    def subnet(self) -> Subnet:
        """The best subnet of a single-budget search."""
        return self.best().subnet

    @property
    def score(self) -> float:
        return self.best().score

    def pareto_front(self, kind: str = "bits") -> list[Evaluation]:
        """Evaluations no other one beats on both cost (``kind``: ``"bits"`` or ``"bytes"``) and score,
        sorted by cost."""
        measure = Budget(kind, 0.0).measure
        sign = 1.0 if self.higher_is_better else -1.0
        front, best_quality = [], -math.inf
        for evaluation in sorted(self.evaluations, key=lambda e: (measure(e.cost), -sign * e.score)):
            quality = sign * evaluation.score
            if quality > best_quality:
                front.append(evaluation)
                best_quality = quality
        return front

    def selection(self, budget: Budget | float | str | None = None, source: str | None = None) -> dict:
        """How the subnet for ``budget`` was chosen, JSON-ready: what a materialized model records in its
        config (``selection``) and its model card shows, Pareto front included."""
        choice = self.best(budget)
        return {
            "budget": str(choice.budget),
            "strategy": self.strategy,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "score": choice.score,
            "avg_bits": choice.cost.avg_bits,
            "bytes": choice.cost.bytes,
            "n_evaluations": choice.n_evaluations,
            "seconds": round(choice.seconds, 3),
            "granularity": choice.subnet.space.granularity,
            "bits_per_group": dict(choice.subnet),
            "source": source,
            "pareto_front": [
                {"avg_bits": e.cost.avg_bits, "bytes": e.cost.bytes, "score": e.score}
                for e in self.pareto_front()
            ],
        }

    def to_dict(self) -> dict:
        """JSON-ready: the choices, every evaluation and the Pareto front in average bits."""
        return {
            "strategy": self.strategy,
            "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "n_evaluations": self.n_evaluations,
            "seconds": self.seconds,
            "choices": [c.to_dict() for c in self.choices],
            "evaluations": [e.to_dict() for e in self.evaluations],
            "pareto_front": [e.to_dict() for e in self.pareto_front()],
        }

    @classmethod
    def from_dict(cls, data: Mapping, space: SearchSpace) -> SearchResult:
        """The result that :meth:`to_dict` wrote, for ``space`` (subnets and costs are rebuilt from it,
        so a result saved for another model is refused by ``space.subnet``)."""

        def evaluated(entry: Mapping) -> tuple[Subnet, Cost]:
            subnet = space.subnet({name: int(bits) for name, bits in entry["bits"].items()})
            return subnet, space.cost(subnet)

        choices = []
        for entry in data["choices"]:
            subnet, cost = evaluated(entry)
            choices.append(
                BudgetChoice(
                    Budget.parse(entry["budget"]),
                    subnet,
                    cost,
                    entry["score"],
                    entry["n_evaluations"],
                    entry["seconds"],
                )
            )
        evaluations = [Evaluation(*evaluated(entry), entry["score"]) for entry in data["evaluations"]]
        return cls(
            strategy=data["strategy"],
            metric=data["metric"],
            higher_is_better=data["higher_is_better"],
            choices=choices,
            evaluations=evaluations,
            n_evaluations=data["n_evaluations"],
            seconds=data["seconds"],
        )

    @classmethod
    def combine(cls, results: Sequence[SearchResult]) -> SearchResult:
        """One result from searches of the same strategy and metric for different budgets (for example
        run side by side in several processes): their choices in order, evaluations without repeats,
        evaluation counts and seconds summed."""
        if not results:
            raise ValueError("SearchResult.combine: no results given.")
        first = results[0]
        kinds = {(r.strategy, r.metric, r.higher_is_better) for r in results}
        if len(kinds) > 1:
            raise ValueError(
                f"SearchResult.combine: the results come from different searches: {sorted(kinds)}."
            )
        budgets = [str(c.budget) for r in results for c in r.choices]
        if len(set(budgets)) < len(budgets):
            raise ValueError(f"SearchResult.combine: a budget is searched twice among {budgets}.")
        evaluations: dict[tuple[int, ...], Evaluation] = {}
        for result in results:
            for evaluation in result.evaluations:
                evaluations.setdefault(tuple(evaluation.subnet.values()), evaluation)
        return cls(
            strategy=first.strategy,
            metric=first.metric,
            higher_is_better=first.higher_is_better,
            choices=[c for r in results for c in r.choices],
            evaluations=list(evaluations.values()),
            n_evaluations=sum(r.n_evaluations for r in results),
            seconds=sum(r.seconds for r in results),
        )

    def table(self) -> str:
        """A plain-text table of the choices."""
        lines = [
            f"{'budget':>10} {'avg bits':>9} {'MB':>9} {self.metric:>10} {'evals':>6} {'seconds':>8}  bits per group"
        ]
        for c in self.choices:
            lines.append(
                f"{str(c.budget):>10} {c.cost.avg_bits:9.3f} {c.cost.bytes / 1e6:9.2f} {c.score:10.4f} "
                f"{c.n_evaluations:6d} {c.seconds:8.1f}  {''.join(str(b) for b in c.subnet.values())}"
            )
        return "\n".join(lines)


__all__ = ["BudgetChoice", "Evaluation", "SearchResult"]
