"""Budgets: parsing, the feasible range, and that the cost table agrees with the one cost model."""

from __future__ import annotations

import random

import pytest

import peft_qfa
from peft_qfa.search.cost_table import CostTable
from peft_qfa.supernet.budget import Budget, check_feasible, feasible_range, parse_budgets

from .search_helpers import ShapeOnlySupernet


def test_budget_forms():
    assert Budget.parse(3) == Budget("bits", 3.0)
    assert Budget.parse("3.0bits") == Budget("bits", 3.0)
    assert Budget.parse("2.5GB") == Budget("bytes", 2.5e9)
    assert Budget.parse("800MB") == Budget("bytes", 8e8)
    assert Budget.parse("500MiB") == Budget("bytes", 500 * 2**20)
    assert parse_budgets([2.5, "3.0bits", "800MB", 2.5]) == [
        Budget("bits", 2.5),
        Budget("bits", 3.0),
        Budget("bytes", 8e8),
    ]
    assert str(Budget.parse("3.0bits")) == "3 bits" and str(Budget.parse("2.5GB")) == "2.5 GB"


@pytest.mark.parametrize(
    "bad, error, message",
    [
        (
            "3 potatoes",
            ValueError,
            r"cannot read `budget='3 potatoes'`; write average bits \('3.0bits' or 3.0\)",
        ),
        ("GB", ValueError, "cannot read"),
        (-1, ValueError, "must be a positive number of bits"),
        ({"model.layers.0": 2}, TypeError, "is a subnet, not a budget to search for"),
        ([], ValueError, "empty list of budgets"),
        (None, TypeError, "must be a number or a string"),
    ],
)
def test_malformed_budgets_are_refused(bad, error, message):
    with pytest.raises(error, match=message):
        parse_budgets(bad)


def test_budget_outside_the_supernet_states_the_feasible_range(supernet):
    space = peft_qfa.search_space(supernet)
    assert feasible_range(space, "bits") == (2.0, 4.0)
    with pytest.raises(
        ValueError, match=r"1.5 bits is below the smallest subnet.*range from 2 bits .* to 4 bits"
    ):
        check_feasible(space, Budget("bits", 1.5))
    with pytest.raises(
        ValueError, match=r"4.5 bits is above the largest subnet.*range from 2 bits .* to 4 bits"
    ):
        check_feasible(space, Budget("bits", 4.5))
    low, high = feasible_range(space, "bytes")
    assert low == space.cost(space.uniform(2)).bytes and high == space.cost(space.uniform(4)).bytes
    with pytest.raises(
        ValueError, match=r"above the largest subnet of this supernet \(.* kB\); feasible bytes budgets"
    ):
        check_feasible(space, Budget.parse("2.5GB"))
    check_feasible(space, Budget("bits", 2.0))  # both ends are feasible
    check_feasible(space, Budget("bytes", high))


@pytest.mark.parametrize("kind", ["bits", "bytes"])
@pytest.mark.parametrize("granularity", ["block", "layer"])
def test_cost_table_adds_up_to_the_cost_model(kind, granularity):
    rng = random.Random(0)
    blocks = [
        [(32 * rng.randint(1, 4), 8 * rng.randint(1, 6)) for _ in range(rng.randint(1, 3))] for _ in range(5)
    ]
    model = ShapeOnlySupernet(blocks, (2, 3, 4))
    space = peft_qfa.search_space(model, granularity)
    table = CostTable.from_space(space, kind)
    measure = Budget(kind, 0.0).measure
    for seed in range(20):
        subnet = space.sample(seed)
        assert table.predict(subnet) == pytest.approx(measure(space.cost(subnet)), rel=1e-12, abs=1e-9)
