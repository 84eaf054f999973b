"""Training only some bit-widths, or adding the lowest after a warm-up: what is drawn, and its errors."""

from __future__ import annotations

import json

import pytest
from transformers import Trainer, TrainingArguments

from peft_qfa import QFASamplerCallback, build_sampler
from peft_qfa.train import CandidateBitsSampler

STEPS = range(400)


def drawn_bits(sampler, steps) -> set[int]:
    return {bits for step in steps for bits in sampler.sample(step).values()}


def test_train_bits_restricts_every_draw_and_keeps_the_full_space(space32):
    sampler = build_sampler("resource-balanced", space32, seed=0, period=100, train_bits=[3, 4])
    assert isinstance(sampler, CandidateBitsSampler)
    assert drawn_bits(sampler, STEPS) == {3, 4}
    assert sampler.fingerprint == space32.fingerprint()  # it trains the same supernet
    assert sampler.sample(5).space is space32
    assert sampler.period == 100


def test_a_warm_up_leaves_the_lowest_bits_out_until_its_end(space32):
    sampler = build_sampler("uniform", space32, seed=0, warmup_steps=50)
    assert drawn_bits(sampler, range(50)) == {3, 4}
    assert drawn_bits(sampler, range(50, 400)) == {2, 3, 4}
    explicit = build_sampler("uniform", space32, seed=0, warmup_steps=10, warmup_bits=[4])
    assert drawn_bits(explicit, range(10)) == {4}


def test_draws_stay_a_pure_function_of_seed_and_step(space32):
    one = build_sampler("resource-balanced", space32, seed=3, period=40, train_bits=[2, 4], warmup_steps=7)
    two = build_sampler("resource-balanced", space32, seed=3, period=40, train_bits=[2, 4], warmup_steps=7)
    steps = [0, 6, 7, 39, 300]
    assert [one.sample(s) for s in steps] == [two.sample(s) for s in reversed(steps)][::-1]  # order-free
    # the main phase draws what the plain sampler on the restricted space draws
    plain = build_sampler("resource-balanced", space32.restricted([2, 4]), seed=3, period=40)
    assert all(dict(one.sample(s)) == dict(plain.sample(s)) for s in range(7, 120))


def test_config_rebuilds_the_same_sampler(space32):
    sampler = build_sampler("resource-balanced", space32, seed=2, period=30, train_bits=[2, 3, 4], warmup_steps=12)
    config = json.loads(json.dumps(sampler.config()))
    assert config == {
        "name": "resource-balanced", "seed": 2, "period": 30,
        "train_bits": [2, 3, 4], "warmup_steps": 12, "warmup_bits": [3, 4],
    }
    rebuilt = build_sampler(config.pop("name"), space32, **config)
    fixed = build_sampler("fixed", space32, subnet=space32.restricted([3, 4]).uniform(3), train_bits=[3, 4])
    assert json.loads(json.dumps(fixed.config()))["subnet"] == 3  # JSON-safe, rebuildable
    assert all(rebuilt.sample(s) == sampler.sample(s) for s in range(60))


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"train_bits": [5]}, ValueError, r"names bit-width\(s\) \[5\] the supernet does not hold"),
        ({"train_bits": []}, TypeError, "non-empty list of bit-widths"),
        ({"train_bits": 3}, TypeError, "non-empty list of bit-widths"),
        ({"train_bits": [3.0]}, TypeError, "must hold ints"),
        ({"warmup_steps": -1}, ValueError, "non-negative int"),
        ({"warmup_bits": [4]}, ValueError, "`warmup_steps` is 0"),
        ({"train_bits": [4], "warmup_steps": 5}, ValueError, "needs at least two `train_bits`"),
    ],
)
def test_bad_candidate_options_are_clear(space32, options, error, match):
    with pytest.raises(error, match=match):
        build_sampler("uniform", space32, **options)


def test_restricting_a_space_refuses_bits_it_does_not_hold(space32):
    with pytest.raises(ValueError, match=r"the supernet holds \[2, 3, 4\]"):
        space32.restricted([8])
    assert space32.restricted([3]).all_bits == (3,)


def test_the_callback_trains_only_the_allowed_bits_and_saves_the_options(tmp_path, make_qfa_model, make_lm_dataset):
    model = make_qfa_model()
    callback = QFASamplerCallback(schedule="uniform", seed=0, train_bits=[3, 4], warmup_steps=2, warmup_bits=[4])
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=6, per_device_train_batch_size=2, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=make_lm_dataset(), callbacks=[callback]).train()
    counts = callback.bit_counts
    assert all(set(per_group) <= {3, 4} and per_group.get(4, 0) >= 2 for per_group in counts.values())
    assert sum(counts[next(iter(counts))].values()) == 6
    saved = callback.state()["args"]
    assert saved == {"schedule": "uniform", "seed": 0, "period": None, "train_bits": [3, 4],
                     "warmup_steps": 2, "warmup_bits": [4]}
