"""QFASamplerCallback inside a real Trainer run on a tiny supernet with QFA adapters."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_callback import TrainerState

import peft_qfa
from peft_qfa import QFALinear, QFASamplerCallback, build_sampler
from peft_qfa.train import AVG_BITS_LOG_KEY


def training_args(tmp_path, **overrides) -> TrainingArguments:
    settings = dict(
        output_dir=str(tmp_path / "out"),
        max_steps=5,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=2,
        disable_tqdm=True,
        seed=0,
    )
    settings.update(overrides)
    return TrainingArguments(**settings)


class StepMarkers(TrainerCallback):
    """Appends ("step_end", global_step) to a shared event list after every optimizer step."""

    def __init__(self, events):
        self.events = events

    def on_step_end(self, args, state, control, **kwargs):
        self.events.append(("step_end", state.global_step))


def test_subnet_changes_between_optimizer_steps_never_inside_one(tmp_path, make_qfa_model, make_lm_dataset):
    """Gradient accumulation 3 over 7 micro-batches per epoch (steps of 3, 3 and 1 micro-batches)."""
    model = make_qfa_model()
    events = []
    probe = next(m for m in model.modules() if isinstance(m, QFALinear))
    probe.register_forward_pre_hook(lambda module, inputs: events.append(("forward", peft_qfa.get_subnet(model))))
    callback = QFASamplerCallback(schedule="sandwich", seed=0)
    args = training_args(tmp_path, gradient_accumulation_steps=3, max_steps=5, logging_steps=100)
    Trainer(model=model, args=args, train_dataset=make_lm_dataset(14), callbacks=[callback, StepMarkers(events)]).train()

    per_step, current = [], []
    for kind, value in events:
        if kind == "forward":
            current.append(value)
        else:
            assert value == len(per_step) + 1
            per_step.append(current)
            current = []
    assert [len(chunk) for chunk in per_step] == [3, 3, 1, 3, 3]
    sampler = build_sampler("sandwich", peft_qfa.search_space(model), seed=0)
    for step, chunk in enumerate(per_step):
        assert all(subnet == sampler.sample(step) for subnet in chunk), step
    assert len({tuple(chunk[0].values()) for chunk in per_step}) > 1  # it did switch


def test_logs_average_bits_and_counts_what_was_trained(tmp_path, make_qfa_model, make_lm_dataset):
    model = make_qfa_model()
    callback = QFASamplerCallback(schedule="resource-balanced", seed=3)
    trainer = Trainer(model=model, args=training_args(tmp_path), train_dataset=make_lm_dataset(), callbacks=[callback])
    trainer.train()

    space = peft_qfa.search_space(model)
    expected_sampler = build_sampler("resource-balanced", space, seed=3, total_steps=5)
    assert callback.sampler.config() == expected_sampler.config() == {"name": "resource-balanced", "seed": 3, "period": 4}
    subnets = [expected_sampler.sample(step) for step in range(5)]
    logged = [(entry["step"], entry[AVG_BITS_LOG_KEY]) for entry in trainer.state.log_history if AVG_BITS_LOG_KEY in entry]
    assert logged == [
        (2, pytest.approx(np.mean([s.avg_bits for s in subnets[0:2]]))),
        (4, pytest.approx(np.mean([s.avg_bits for s in subnets[2:4]]))),
    ]
    expected_counts = {g: dict(Counter(s[g] for s in subnets)) for g in space.group_names}
    assert callback.bit_counts == expected_counts
    assert callback.last_subnet == subnets[-1]
    table = callback.summary()
    for group, counts in expected_counts.items():
        row = next(line for line in table.splitlines() if line.startswith(group))
        assert [int(x) for x in row.split()[1:]] == [counts.get(b, 0) for b in (2, 3, 4)]


def test_a_sampler_built_for_another_supernet_is_refused(tmp_path, make_qfa_model, make_lm_dataset, space32):
    callback = QFASamplerCallback(build_sampler("uniform", space32))
    trainer = Trainer(model=make_qfa_model(), args=training_args(tmp_path), train_dataset=make_lm_dataset(), callbacks=[callback])
    with pytest.raises(ValueError, match=r"QFASamplerCallback: the UniformSampler was built for another supernet \(32 block"):
        trainer.train()


def test_a_ready_sampler_for_this_supernet_is_used(tmp_path, make_qfa_model, make_lm_dataset):
    model = make_qfa_model()
    sampler = build_sampler("fixed", peft_qfa.search_space(model), subnet=2)
    callback = QFASamplerCallback(sampler)
    Trainer(model=model, args=training_args(tmp_path, max_steps=2), train_dataset=make_lm_dataset(), callbacks=[callback]).train()
    assert callback.sampler is sampler
    assert all(counts == {2: 2} for counts in callback.bit_counts.values())
    assert callback.state()["args"] == {"schedule": "fixed", "seed": 0, "subnet": 2}


# ---------------------------------------------------------------------------------------------- state


def test_state_round_trips_through_json_and_from_state(space32):
    callback = QFASamplerCallback(schedule="uniform", seed=7, period=11)
    callback.bit_counts = {"model.layers.0": {2: 3, 4: 1}}
    callback.resolved_period = 11
    callback.avg_bits_pending = [6.5, 2]

    restored = QFASamplerCallback.from_state(json.loads(json.dumps(callback.state())))
    assert restored.bit_counts == {"model.layers.0": {2: 3, 4: 1}}
    assert (restored.schedule, restored.seed, restored.period) == ("uniform", 7, 11)
    assert restored.avg_bits_pending == [6.5, 2]

    fixed = QFASamplerCallback(schedule="fixed", subnet=space32.uniform(3))  # a Subnet option is saved as a dict
    assert QFASamplerCallback.from_state(json.loads(json.dumps(fixed.state()))).sampler_options == {
        "subnet": dict(space32.uniform(3))
    }
    ready = QFASamplerCallback(build_sampler("resource-balanced", space32, seed=4, period=9))
    assert ready.state()["args"] == {"schedule": "resource-balanced", "seed": 4, "period": 9}


def _resumed_state(callback: QFASamplerCallback, step: int) -> TrainerState:
    state = TrainerState(stateful_callbacks=[callback])
    state.global_step, state.max_steps = step, 10
    return state


def test_resuming_checks_the_supernet_and_warns_on_a_changed_schedule(tmp_path, make_qfa_model):
    model = make_qfa_model()
    args = training_args(tmp_path)
    first = QFASamplerCallback(schedule="uniform", seed=1)
    first.on_train_begin(args, TrainerState(max_steps=10), None, model=model)
    state = _resumed_state(first, 4)

    with pytest.warns(UserWarning, match=r"resuming a run that sampled with \{'seed': \(1, 2\)\}"):
        QFASamplerCallback(schedule="uniform", seed=2).on_train_begin(args, state, None, model=model)

    state.stateful_callbacks["QFASamplerCallback"]["attributes"]["space_fingerprint"] = {"granularity": "layer", "groups": {}}
    with pytest.raises(ValueError, match="the checkpoint being resumed was trained on another supernet"):
        QFASamplerCallback(schedule="uniform", seed=1).on_train_begin(args, state, None, model=model)

    with pytest.warns(UserWarning, match="from a checkpoint without sampler state; the bit-width counts start from zero"):
        QFASamplerCallback().on_train_begin(args, TrainerState(global_step=4, max_steps=10), None, model=model)


def test_a_fresh_run_resets_the_counts(tmp_path, make_qfa_model):
    model = make_qfa_model()
    callback = QFASamplerCallback(schedule="uniform")
    callback.bit_counts = {"model.layers.0": {2: 9}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callback.on_train_begin(training_args(tmp_path), TrainerState(max_steps=3), None, model=model)
    assert callback.bit_counts == {"model.layers.0": {}, "model.layers.1": {}}


# ---------------------------------------------------------------------------------------------- bad input


def test_bad_callback_settings_fail_at_construction(space32):
    with pytest.raises(ValueError, match=r"QFASamplerCallback: unknown schedule 'balanced'; known schedules: \['fixed'"):
        QFASamplerCallback(schedule="balanced")
    with pytest.raises(ValueError, match=r"QFASamplerCallback: `period=0` must be a positive number of optimizer steps"):
        QFASamplerCallback(period=0)
    with pytest.raises(ValueError, match=r"QFASamplerCallback got a ready UniformSampler and also \['seed'\]"):
        QFASamplerCallback(build_sampler("uniform", space32), seed=3)
    with pytest.raises(TypeError, match="`schedule` must be a sampler name such as 'resource-balanced' or a SubnetSampler"):
        QFASamplerCallback(schedule=3)
