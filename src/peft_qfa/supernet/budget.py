"""Budgets: the most a searched subnet may cost, in average bits or in bytes of the materialized model.

A budget only *reads* costs: every number it compares comes from :meth:`SearchSpace.cost`, the one
cost model (``peft_qfa.supernet.cost``). A budget is parsed once, where it enters
(``QFAQuantizationConfig(budget=...)``, ``peft_qfa.from_pretrained``, ``peft_qfa.search_subnet``);
everything below takes the typed :class:`Budget`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .cost import Cost
from .space import SearchSpace, Subnet

KINDS = ("bits", "bytes")
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(bits?|[KMGT]i?B|B)\s*$", re.IGNORECASE)
_BYTE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
BITS_TOLERANCE = 1e-9
"""Average bits are float sums: a subnet at exactly 3.0 bits may compute to 3.0000000000000004."""


def _format_bytes(n: float) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= size:
            return f"{n / size:.4g} {unit}"
    return f"{n:.0f} B"


@dataclass(frozen=True)
class Budget:
    """One budget: ``kind`` is ``"bits"`` (parameter-weighted average code bits, the paper's budget)
    or ``"bytes"`` (the whole materialized model: codes, scales, zeros and full-precision tensors)."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"Budget kind must be one of {KINDS}, got {self.kind!r}.")

    @classmethod
    def parse(cls, budget: Budget | float | int | str) -> Budget:
        """``3.0`` / ``"3.0bits"`` (average bits) or ``"2.5GB"`` / ``"800MB"`` / ``"500MiB"`` (bytes)."""
        if isinstance(budget, Budget):
            return budget
        if isinstance(budget, Mapping):
            raise TypeError(
                "QFA budget: an explicit {group: bits} mapping is a subnet, not a budget to search for; pass it as "
                "`QFAQuantizationConfig(subnet=...)` or materialize it with `peft_qfa.materialize(model, subnet)`."
            )
        if isinstance(budget, bool) or not isinstance(budget, (int, float, str)):
            raise TypeError(
                f"QFA budget: `budget` must be a number or a string like '3.0bits' or '2.5GB', got {budget!r}."
            )
        if not isinstance(budget, str):
            if not math.isfinite(budget) or budget <= 0:
                raise ValueError(f"QFA budget: `budget={budget!r}` must be a positive number of bits.")
            return cls("bits", float(budget))
        match = _PATTERN.match(budget)
        if match is None:
            raise ValueError(
                f"QFA budget: cannot read `budget={budget!r}`; write average bits ('3.0bits' or 3.0) or a size "
                "('2.5GB', '500MiB')."
            )
        value, unit = float(match.group(1)), match.group(2).lower()
        if value <= 0:
            raise ValueError(f"QFA budget: `budget={budget!r}` must be positive.")
        if unit.startswith("bit"):
            return cls("bits", value)
        return cls("bytes", value * _BYTE_UNITS[unit])

    def to_json(self) -> str:
        """The text form :meth:`parse` reads back exactly: ``"3bits"`` or ``"2500000000B"``."""
        return f"{self.value!r}bits" if self.kind == "bits" else f"{self.value!r}B"

    def measure(self, cost: Cost) -> float:
        """The part of ``cost`` this budget limits."""
        return cost.avg_bits if self.kind == "bits" else float(cost.bytes)

    def fits(self, cost: Cost) -> bool:
        slack = BITS_TOLERANCE if self.kind == "bits" else 0.0
        return self.measure(cost) <= self.value + slack

    def format(self, value: float | None = None) -> str:
        """``value`` (default: the budget itself) in this budget's unit, e.g. ``"3 bits"`` or ``"2.5 GB"``."""
        value = self.value if value is None else value
        return f"{value:g} bits" if self.kind == "bits" else _format_bytes(value)

    def __str__(self) -> str:
        return self.format()


def parse_budgets(budgets: Budget | float | int | str | Sequence) -> list[Budget]:
    """One budget or a list of them (``[2.5, "3.0bits", "90MB"]``), parsed, in the given order."""
    if isinstance(budgets, (list, tuple)):
        if not budgets:
            raise ValueError("Budget: got an empty list of budgets; pass at least one, e.g. [2.5, 3.0].")
        parsed = [Budget.parse(b) for b in budgets]
    else:
        parsed = [Budget.parse(budgets)]
    return list(dict.fromkeys(parsed))  # duplicates would only repeat the same search


def extreme_subnets(space: SearchSpace) -> tuple[Subnet, Subnet]:
    """The cheapest (every group at its fewest bits) and the dearest (every group at its most) subnet."""
    return (
        space.subnet({g.name: min(g.bits) for g in space.groups}),
        space.subnet({g.name: max(g.bits) for g in space.groups}),
    )


def feasible_range(space: SearchSpace, kind: str) -> tuple[float, float]:
    """The smallest and largest cost (in ``kind`` units) any subnet of ``space`` can have."""
    probe = Budget(kind, 0.0)
    low, high = extreme_subnets(space)
    return probe.measure(space.cost(low)), probe.measure(space.cost(high))


def check_feasible(space: SearchSpace, budget: Budget) -> None:
    """Raise a ``ValueError`` stating the feasible range when no subnet can meet ``budget`` exactly enough.

    Below the cheapest subnet nothing fits; above the dearest one the budget is almost certainly a
    unit mistake (``"2.5GB"`` for a 100 MB model), and the answer would just be the full supernet.
    """
    low, high = feasible_range(space, budget.kind)
    slack = BITS_TOLERANCE if budget.kind == "bits" else 0.0
    if budget.value < low - slack:
        where, edge = "below the smallest", low
    elif budget.value > high + slack:
        where, edge = "above the largest", high
    else:
        return
    raise ValueError(
        f"QFA budget {budget} is {where} subnet of this supernet ({budget.format(edge)}); feasible {budget.kind} "
        f"budgets range from {budget.format(low)} (every group at its fewest bits) to {budget.format(high)} (every "
        "group at its most bits). Pick a budget in that range."
    )


def feasible_budgets(space: SearchSpace, budgets: Budget | float | int | str | Sequence) -> list[Budget]:
    """Parse ``budgets`` (one or a list) and check each against ``space``: what every entry point of a
    search does once, before passing the typed budgets down."""
    parsed = parse_budgets(budgets)
    for budget in parsed:
        check_feasible(space, budget)
    return parsed


__all__ = [
    "BITS_TOLERANCE",
    "KINDS",
    "Budget",
    "check_feasible",
    "extreme_subnets",
    "feasible_budgets",
    "feasible_range",
    "parse_budgets",
]
