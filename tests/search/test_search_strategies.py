"""Search strategies: every subnet fits its budget; ours finds the optimum of an additive score; results as data."""

from __future__ import annotations

import itertools
import json
import random

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import peft_qfa
from peft_qfa.search import (
    Budget,
    CallableEvaluator,
    LossEvaluator,
    SearchResult,
    SensitivityKnapsackSearch,
    TwoStageSearch,
    plot_pareto,
    run_search,
)
from peft_qfa.search.strategies import knapsack
from peft_qfa.supernet.budget import feasible_range

from .search_helpers import ShapeOnlySupernet, additive_score

BIT_SETS = [(2, 3, 4), (2, 4), (3, 4, 8), (2, 3)]
TINY_STRATEGIES = {
    "two-stage": lambda seed: TwoStageSearch(n_random=6, n_refine=4, seed=seed),
    "sensitivity-knapsack": lambda seed: SensitivityKnapsackSearch(
        population=3, generations=2, children=3, seed=seed
    ),
}


def random_supernet(rng: random.Random, bits):
    blocks = [
        [(32 * rng.randint(1, 4), 8 * rng.randint(1, 5)) for _ in range(rng.randint(1, 3))]
        for _ in range(rng.randint(1, 6))
    ]
    return ShapeOnlySupernet(blocks, bits)


def random_loss(model, rng: random.Random):
    """Per-layer losses that fall with bits, plus a small interaction term so the score is not purely additive."""
    layers = peft_qfa.supernet.layer.find_bit_layers(model)
    table = {}
    for name, layer in layers.items():
        drops = sorted((rng.random() for _ in layer.candidate_bits), reverse=True)
        table[name] = dict(zip(layer.candidate_bits, drops, strict=True))
    additive = additive_score(table)
    return lambda m: additive(m) + 0.05 * rng.random()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    bits=st.sampled_from(BIT_SETS),
    granularity=st.sampled_from(["block", "layer"]),
    kind=st.sampled_from(["bits", "bytes"]),
    position=st.floats(0.0, 1.0),
    strategy=st.sampled_from(sorted(TINY_STRATEGIES)),
)
# a budget just under the dearest subnet: the draws aimed at it are nearly all that subnet
@example(seed=1815, bits=(2, 3), granularity="block", kind="bits", position=0.99999, strategy="two-stage")
def test_a_subnet_never_exceeds_its_budget(seed, bits, granularity, kind, position, strategy):
    rng = random.Random(seed)
    model = random_supernet(rng, bits)
    space = peft_qfa.search_space(model, granularity)
    low, high = feasible_range(space, kind)
    value = low + position * (high - low)
    budget = Budget(kind, value if kind == "bits" else float(int(value)))
    evaluator = CallableEvaluator(random_loss(model, rng), higher_is_better=False)
    result = run_search(model, space, budget, evaluator, TINY_STRATEGIES[strategy](seed))
    choice = result.best()
    assert choice.budget == budget
    assert choice.cost == space.cost(choice.subnet)  # the recorded cost is the cost model's
    assert budget.fits(space.cost(choice.subnet))
    assert budget.measure(space.cost(choice.subnet)) <= budget.value + 1e-9
    # nothing better that fits was evaluated and overlooked
    fitting = [e.score for e in result.evaluations if budget.fits(e.cost)]
    assert choice.score == min(fitting)


@pytest.mark.parametrize("kind", ["bits", "bytes"])
def test_ours_finds_the_exhaustive_optimum_of_an_additive_score(kind):
    rng = random.Random(1)
    model = random_supernet(random.Random(5), (2, 3, 4))
    space = peft_qfa.search_space(model, "layer")
    table = {
        name: dict(
            zip(layer.candidate_bits, sorted((rng.random() for _ in range(3)), reverse=True), strict=True)
        )
        for name, layer in peft_qfa.supernet.layer.find_bit_layers(model).items()
    }
    loss = additive_score(table)
    low, high = feasible_range(space, kind)
    for position in (0.2, 0.5, 0.8):
        budget = Budget(kind, low + position * (high - low))
        best = min(
            (
                space.subnet(dict(zip(space.group_names, combo, strict=True)))
                for combo in itertools.product(*(g.bits for g in space.groups))
            ),
            key=lambda s: loss_of(model, s, loss) if budget.fits(space.cost(s)) else float("inf"),
        )
        result = run_search(
            model,
            space,
            budget,
            CallableEvaluator(loss, higher_is_better=False),
            SensitivityKnapsackSearch(generations=0),
        )
        assert result.score == pytest.approx(loss_of(model, best, loss), abs=1e-12)


def loss_of(model, subnet, loss):
    with peft_qfa.use_subnet(model, subnet):
        return loss(model)


def test_knapsack_is_exact_on_a_small_instance():
    options = {
        "a": {2: (0.0, 5.0), 3: (1.0, 2.0), 4: (2.0, 0.0)},
        "b": {2: (0.0, 4.0), 3: (1.0, 3.5), 4: (2.0, 0.0)},
        "c": {2: (0.0, 1.0), 3: (1.0, 0.5), 4: (2.0, 0.0)},
    }
    for capacity in (0.0, 1.0, 2.0, 3.0, 4.5, 6.0):
        brute = min(
            (
                dict(zip("abc", combo, strict=True))
                for combo in itertools.product((2, 3, 4), repeat=3)
                if sum(options[g][b][0] for g, b in zip("abc", combo, strict=True)) <= capacity
            ),
            key=lambda a: sum(options[g][b][1] for g, b in a.items()),
        )
        found = knapsack(list("abc"), options, capacity)[0]
        assert sum(options[g][b][1] for g, b in found.items()) == sum(
            options[g][b][1] for g, b in brute.items()
        )
        assert sum(options[g][b][0] for g, b in found.items()) <= capacity


@pytest.mark.parametrize("strategy", sorted(TINY_STRATEGIES))
def test_search_on_a_real_supernet(supernet, search_ids, strategy, tmp_path):
    evaluator = LossEvaluator(search_ids, seq_len=24)
    space = peft_qfa.search_space(supernet)
    before = peft_qfa.get_subnet(supernet)
    search = TINY_STRATEGIES[strategy](0)
    result = run_search(supernet, space, [2.5, "3.5bits"], evaluator, search)
    assert peft_qfa.get_subnet(supernet) == before  # the model's own subnet is restored
    assert [str(c.budget) for c in result.choices] == ["2.5 bits", "3.5 bits"]
    for choice in result.choices:
        assert choice.budget.fits(space.cost(choice.subnet))
        with peft_qfa.use_subnet(supernet, choice.subnet):  # the reported score is the subnet's real score
            assert LossEvaluator(search_ids, seq_len=24).score(supernet) == pytest.approx(
                choice.score, rel=1e-6
            )
    # the evaluator cache: every subnet evaluated once, and the count says so (sensitivity probes included,
    # which ours scores on the first half of the search tokens by default)
    assert evaluator.n_evaluations == len(result.evaluations) == len(evaluator.cache)
    helpers = search.helper_evaluators()
    assert result.n_evaluations == evaluator.n_evaluations + sum(h.n_evaluations for h in helpers)
    if strategy == "sensitivity-knapsack":
        (probes,) = helpers
        assert evaluator.n_tokens / 2 <= probes.n_tokens < evaluator.n_tokens
        assert probes.n_evaluations == 1 + len(space) * 2  # the all-4 reference, each group at 3 and at 2 bits
    front = result.pareto_front()
    assert all(
        a.cost.avg_bits <= b.cost.avg_bits and a.score > b.score
        for a, b in zip(front, front[1:], strict=False)
    )
    json.dumps(result.to_dict())  # the result is plain data
    assert result.selection(2.5)["bits_per_group"] == dict(result.best(2.5).subnet)
    png = plot_pareto(result, tmp_path / "pareto.png")
    with open(png, "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_results_round_trip_through_json_and_combine(supernet, search_ids):
    """Searches run side by side (one budget each) combine into the result of one search of both."""
    space = peft_qfa.search_space(supernet)
    parts = [
        run_search(
            supernet, space, budget, LossEvaluator(search_ids, seq_len=24), TINY_STRATEGIES["two-stage"](0)
        )
        for budget in (2.5, 3.5)
    ]
    restored = [SearchResult.from_dict(json.loads(json.dumps(p.to_dict())), space) for p in parts]
    for part, again in zip(parts, restored, strict=True):
        assert again.to_dict() == part.to_dict()
    both = SearchResult.combine(restored)
    assert [str(c.budget) for c in both.choices] == ["2.5 bits", "3.5 bits"]
    assert both.best(3.5).subnet == parts[1].best().subnet
    assert both.n_evaluations == parts[0].n_evaluations + parts[1].n_evaluations
    keys = [tuple(e.subnet.values()) for e in both.evaluations]
    assert (
        len(keys)
        == len(set(keys))
        == len({k for p in parts for k in (tuple(e.subnet.values()) for e in p.evaluations)})
    )
    with pytest.raises(ValueError, match="a budget is searched twice"):
        SearchResult.combine([restored[0], restored[0]])
    with pytest.raises(ValueError, match="no results"):
        SearchResult.combine([])
    other = ShapeOnlySupernet([[(32, 8)]], (2, 3, 4))
    with pytest.raises(ValueError, match="not in the model"):
        SearchResult.from_dict(parts[0].to_dict(), peft_qfa.search_space(other))


@pytest.mark.parametrize("strategy", sorted(TINY_STRATEGIES))
def test_search_shows_progress_that_counts_real_evaluations(supernet, search_ids, strategy, capsys):
    from transformers.utils import logging as hf_logging

    result = run_search(
        supernet,
        peft_qfa.search_space(supernet),
        [2.5, 3.5],
        LossEvaluator(search_ids, seq_len=24),
        TINY_STRATEGIES[strategy](0),
    )
    bar = capsys.readouterr().err
    assert f"search ({strategy})" in bar
    assert f"| {result.n_evaluations}/" in bar.rsplit("\r", 1)[-1]  # the last state counts every evaluation
    hf_logging.disable_progress_bar()  # the library's own switch turns it off
    try:
        run_search(
            supernet,
            peft_qfa.search_space(supernet),
            3.0,
            LossEvaluator(search_ids, seq_len=24),
            TINY_STRATEGIES[strategy](1),
        )
    finally:
        hf_logging.enable_progress_bar()
    assert "search (" not in capsys.readouterr().err


def test_a_loss_evaluator_cut_to_its_first_windows():
    ids = torch.arange(100) % 50
    evaluator = LossEvaluator(ids, seq_len=24, batch_size=2)  # windows of 24, 24, 24, 24 and a tail of 4
    half = evaluator.head(0.5)
    assert half.n_tokens == 72 and [b.shape for b in half.batches] == [(2, 24), (1, 24)]
    assert torch.equal(torch.cat([b.flatten() for b in half.batches]), ids[:72])
    assert evaluator.head(0.01).n_tokens == 24  # at least one window
    assert evaluator.head(1.0) is None  # nothing to cut
    assert LossEvaluator(ids[:30], seq_len=24).head(0.5).n_tokens == 24
    assert LossEvaluator(ids[:20], seq_len=24).head(0.5) is None  # one short window
    assert CallableEvaluator(lambda m: 0.0, higher_is_better=True).head(0.5) is None  # other evaluators cannot be cut
    with pytest.raises(ValueError, match="fraction must be in"):
        evaluator.head(0.0)


def test_strategy_options_are_checked():
    with pytest.raises(ValueError, match="TwoStageSearch: need n_random >= 1"):
        TwoStageSearch(n_random=0)
    with pytest.raises(ValueError, match="SensitivityKnapsackSearch: need population >= 2"):
        SensitivityKnapsackSearch(population=1)
    with pytest.raises(ValueError, match="Unknown search strategy 'greedy'"):
        peft_qfa.search.make_strategy("greedy")


def test_sensitivity_probes_on_a_cheaper_evaluator_are_counted(supernet, search_ids):
    evaluator, probes = LossEvaluator(search_ids, seq_len=24), LossEvaluator(search_ids[:1], seq_len=24)
    strategy = SensitivityKnapsackSearch(population=3, generations=1, children=2, probe_evaluator=probes)
    result = run_search(supernet, peft_qfa.search_space(supernet), 3.0, evaluator, strategy)
    assert (
        probes.n_evaluations == 1 + 4 * 2
    )  # the all-4-bit reference, then each of 4 blocks at 3 and at 2 bits
    assert result.n_evaluations == evaluator.n_evaluations + probes.n_evaluations
    assert (
        len(result.evaluations) == evaluator.n_evaluations
    )  # candidates are scored by the search's evaluator
    assert Budget("bits", 3.0).fits(result.best().cost)
