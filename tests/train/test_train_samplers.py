"""Subnet samplers: what each schedule trains, their determinism, and their errors (no model needed)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from peft_qfa import (
    FixedSampler,
    ResourceBalancedSampler,
    SandwichSampler,
    SubnetSampler,
    UniformSampler,
    build_sampler,
    register_sampler,
)
from peft_qfa.train.samplers import SAMPLERS, default_period, max_entropy_distribution

PERIOD = 800
SRC = str(Path(__file__).resolve().parents[2] / "src")


def avg_bits_over(sampler, steps):
    return np.array([sampler.sample(step).avg_bits for step in steps])


# ---------------------------------------------------------------------------------------------- the paper's point


def test_resource_balanced_covers_the_bit_range_evenly_over_one_period(space32):
    sampler = build_sampler("resource-balanced", space32, seed=0, period=PERIOD)
    avg = avg_bits_over(sampler, range(PERIOD))
    assert avg.min() <= 2.1 and avg.max() >= 3.9
    counts, _ = np.histogram(avg, bins=8, range=(2.0, 4.0))
    expected = PERIOD / 8
    assert np.all(np.abs(counts - expected) <= 0.35 * expected), counts


def test_uniform_sampling_stays_near_the_middle(space32):
    """The paper's motivation: uniform per-group choices average out near 3 bits (CLT).

    With 32 groups of {2, 3, 4} the average has std sqrt(2/3/32) = 0.144 bit; |avg - 3| > 0.5 has
    probability 2.6e-4 per draw (exact, by convolution): 0.2 expected in 800 draws, and this seed has one
    (3.53). So the test asks for 99% within 3.0 +- 0.5 and none near either end of the range.
    """
    avg = avg_bits_over(build_sampler("uniform", space32, seed=0), range(PERIOD))
    assert np.mean(np.abs(avg - 3.0) <= 0.5) >= 0.99
    assert np.all(np.abs(avg - 3.0) <= 0.75), (avg.min(), avg.max())
    assert abs(avg.std() - math.sqrt(2 / 3 / 32)) < 0.02
    balanced = avg_bits_over(build_sampler("resource-balanced", space32, seed=0, period=PERIOD), range(PERIOD))
    assert balanced.std() > 3 * avg.std()


def exact_uniform_tail(n_groups: int, bits=(2, 3, 4), half_width: float = 0.5) -> float:
    """P(|average bits - mean| > half_width) when each group draws uniformly from ``bits`` (by convolution)."""
    offsets = np.zeros(max(bits) - min(bits) + 1)
    offsets[[b - min(bits) for b in bits]] = 1 / len(bits)
    dist = np.array([1.0])
    for _ in range(n_groups):
        dist = np.convolve(dist, offsets)
    avg = min(bits) + np.arange(dist.size) / n_groups
    return float(dist[np.abs(avg - np.mean(bits)) > half_width + 1e-12].sum())


def test_uniform_leaves_3_plus_minus_half_exactly_as_rarely_as_probability_says(space32):
    """The literal bound '3.0 +- 0.5' is a tail-probability claim, so test the tail rate itself.

    Over 50 seeds x 800 steps the sampler must leave the band as often as the exact distribution
    predicts (2.6e-4 per draw, ~10 of 40,000): a Poisson 99.9% interval, not a picked seed.
    """
    tail = exact_uniform_tail(32)
    assert 2e-4 < tail < 3e-4
    outside = sum(
        int(np.sum(np.abs(avg_bits_over(build_sampler("uniform", space32, seed=seed), range(PERIOD)) - 3.0) > 0.5))
        for seed in range(50)
    )
    expected = tail * 50 * PERIOD
    assert 1 <= outside <= expected + 4 * math.sqrt(expected) + 3, (outside, expected)


def test_each_bit_width_is_trained_by_every_schedule_that_should(space32):
    for name in ("uniform", "resource-balanced", "sandwich"):
        sampler = build_sampler(name, space32, seed=1, period=60)
        seen = {bits for step in range(60) for bits in sampler.sample(step).values()}
        assert seen == {2, 3, 4}, name


# ---------------------------------------------------------------------------------------------- resource-balanced


@pytest.mark.parametrize("bits", [(2, 3, 4), (2, 4), (2, 3, 4, 8)])
@pytest.mark.parametrize("fraction", [0.0, 0.01, 0.25, 0.5, 0.8, 0.999, 1.0])
def test_max_entropy_distribution_has_the_target_mean(bits, fraction):
    mean = bits[0] + fraction * (bits[-1] - bits[0])
    probs = np.array(max_entropy_distribution(bits, mean))
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(probs >= 0)
    assert float(probs @ np.array(bits)) == pytest.approx(mean, abs=1e-9)
    if 0 < fraction < 1:  # an exponential tilt: log-probabilities are linear in the bit-width
        slopes = np.diff(np.log(probs)) / np.diff(bits)
        assert np.allclose(slopes, slopes[0])


def test_max_entropy_distribution_is_uniform_at_the_middle_and_saturates_beyond_the_ends():
    assert max_entropy_distribution((2, 3, 4), 3.0) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert max_entropy_distribution((2, 3, 4), 1.5) == (1.0, 0.0, 0.0)
    assert max_entropy_distribution((2, 3, 4), 9.0) == (0.0, 0.0, 1.0)


def test_triangle_wave_target_goes_high_low_high(space32):
    sampler = ResourceBalancedSampler(space32, period=8)
    targets = [sampler.target_bits(step) for step in range(17)]
    assert targets[:9] == [4.0, 3.5, 3.0, 2.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    assert targets[8:] == targets[:9]  # periodic
    assert sampler.sample(0) == space32.uniform(4)
    assert sampler.sample(4) == space32.uniform(2)


def test_resource_balanced_draws_follow_the_target(space32):
    """Averaged over seeds, the drawn average bits match the target (the categorical's mean)."""
    for step, target in ((1, 3.5), (3, 2.5), (6, 3.0)):
        draws = [ResourceBalancedSampler(space32, seed=s, period=8).sample(step).avg_bits for s in range(200)]
        assert np.mean(draws) == pytest.approx(target, abs=0.03)


def test_groups_whose_candidates_stop_short_saturate(make_block_space):
    space = make_block_space(n_groups=4, bits=(2, 3))
    sampler = ResourceBalancedSampler(space, period=10)
    assert set(sampler.sample(0).values()) == {3}  # target 3 = the highest candidate
    assert set(sampler.sample(5).values()) == {2}


def test_default_period_is_80_percent_of_training(space32):
    assert build_sampler("resource-balanced", space32, total_steps=300).period == 240
    assert build_sampler("resource-balanced", space32, total_steps=1).period == 1
    assert default_period(10_000) == 8_000
    assert build_sampler("resource-balanced", space32, period=7, total_steps=300).period == 7


# ---------------------------------------------------------------------------------------------- sandwich / fixed


def test_sandwich_cycles_largest_smallest_random(space32):
    sampler = SandwichSampler(space32, seed=0)
    for step in range(0, 30, 3):
        assert sampler.sample(step) == space32.uniform(4)
        assert sampler.sample(step + 1) == space32.uniform(2)
        assert len(set(sampler.sample(step + 2).values())) > 1  # a random mix (P(all equal) = 3^-31)


def test_fixed_sampler_returns_its_subnet_every_step(space32):
    assert all(FixedSampler(space32, subnet=3).sample(step) == space32.uniform(3) for step in range(5))
    mixed = {name: 2 if i % 2 else 4 for i, name in enumerate(space32.group_names)}
    sampler = build_sampler("fixed", space32, subnet=mixed)
    assert sampler.sample(11) == mixed
    assert sampler.config() == {"name": "fixed", "seed": 0, "subnet": mixed}
    assert build_sampler("fixed", space32, subnet=space32.uniform(2)).sample(0) == space32.uniform(2)


def test_fixed_sampler_rejects_bad_subnets(space32):
    with pytest.raises(ValueError, match=r"FixedSampler: `subnet=5` bits is not a candidate; choose from \(2, 3, 4\)"):
        FixedSampler(space32, subnet=5)
    with pytest.raises(TypeError, match="FixedSampler: `subnet` must be a Subnet, a {group: bits} dict or one int"):
        FixedSampler(space32, subnet=None)
    with pytest.raises(ValueError, match="cannot run at 5 bits"):
        FixedSampler(space32, subnet={name: 5 for name in space32.group_names})


# ---------------------------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("name", ["uniform", "resource-balanced", "sandwich"])
def test_a_draw_is_a_pure_function_of_seed_and_step(space32, name):
    sampler = build_sampler(name, space32, seed=3, period=50)
    forward = [sampler.sample(step) for step in range(20)]
    backward = [sampler.sample(step) for step in reversed(range(20))][::-1]
    fresh = build_sampler(name, space32, seed=3, period=50)
    assert forward == backward == [fresh.sample(step) for step in range(20)]
    assert sampler.sample(7) == fresh.sample(7)  # whatever was drawn before
    other_seed = build_sampler(name, space32, seed=4, period=50)
    assert [other_seed.sample(step) for step in range(20)] != forward


_SUBPROCESS_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {src!r})
    from peft_qfa import SearchSpace, build_sampler
    from peft_qfa.supernet.cost import LayerShape
    shapes = [LayerShape(f"model.layers.{{i}}.mlp.{{p}}", 64, 64, 32, 2, 0) for i in range(32) for p in ("up_proj", "down_proj")]
    space = SearchSpace(shapes, {{s.name: (2, 3, 4) for s in shapes}}, "block", other_bytes=0)
    out = {{name: [dict(build_sampler(name, space, seed=5, period=50).sample(step)) for step in (0, 1, 17, 49, 1234)]
           for name in ("uniform", "resource-balanced", "sandwich")}}
    print(json.dumps(out))
    """
)


def test_same_seed_gives_the_same_sequence_in_another_process(space32):
    script = _SUBPROCESS_SCRIPT.format(src=SRC)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # a draw must not depend on str hashing
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    for name, subnets in theirs.items():
        ours = build_sampler(name, space32, seed=5, period=50)
        assert subnets == [dict(ours.sample(step)) for step in (0, 1, 17, 49, 1234)], name


# ---------------------------------------------------------------------------------------------- interface and errors


def test_a_sampler_records_its_space(space32):
    sampler = UniformSampler(space32, seed=2)
    assert sampler.fingerprint == space32.fingerprint()
    assert sampler.config() == {"name": "uniform", "seed": 2}
    assert ResourceBalancedSampler(space32, period=9).config() == {"name": "resource-balanced", "seed": 0, "period": 9}


def test_unknown_schedule_names_the_known_ones(space32):
    with pytest.raises(
        ValueError,
        match=r"Unknown QFA sampler schedule 'balanced'; known schedules: \['fixed', 'resource-balanced', 'sandwich', 'uniform'\]",
    ):
        build_sampler("balanced", space32)


@pytest.mark.parametrize("period", [0, -5])
@pytest.mark.parametrize("name", ["resource-balanced", "uniform"])
def test_non_positive_period_is_refused(space32, name, period):
    with pytest.raises(ValueError, match=rf"`period={period}` must be a positive number of optimizer steps"):
        build_sampler(name, space32, period=period)
    with pytest.raises(ValueError, match=rf"ResourceBalancedSampler: `period={period}` must be a positive"):
        ResourceBalancedSampler(space32, period=period)


def test_periodic_sampler_needs_a_period_or_the_training_length(space32):
    with pytest.raises(ValueError, match="needs `period` .* or `total_steps`"):
        build_sampler("resource-balanced", space32)
    with pytest.raises(TypeError, match="`period` must be an int number of optimizer steps, got 2.5"):
        build_sampler("resource-balanced", space32, period=2.5)


def test_bad_space_seed_and_step(space32):
    with pytest.raises(TypeError, match=r"UniformSampler is built for a peft_qfa.SearchSpace \(peft_qfa.search_space"):
        UniformSampler({"model.layers.0": (2, 3, 4)})
    with pytest.raises(ValueError, match="UniformSampler: `seed` must be a non-negative int, got -1"):
        UniformSampler(space32, seed=-1)
    with pytest.raises(ValueError, match=r"UniformSampler.sample: `step` must be a non-negative int .* got -3"):
        UniformSampler(space32).sample(-3)


def test_custom_samplers_register_by_name(space32, monkeypatch):
    monkeypatch.setattr("peft_qfa.train.samplers.SAMPLERS", dict(SAMPLERS))

    @register_sampler
    class AlternatingSampler(SubnetSampler):
        name = "alternating"

        def draw(self, step, rng):
            return self.space.uniform(2 if step % 2 else 4)

    assert isinstance(build_sampler("alternating", space32), AlternatingSampler)
    assert build_sampler("alternating", space32).sample(3) == space32.uniform(2)
    with pytest.raises(ValueError, match="register_sampler: the name 'uniform' is already taken by UniformSampler"):

        @register_sampler
        class Impostor(SubnetSampler):
            name = "uniform"

            def draw(self, step, rng):
                return {}
