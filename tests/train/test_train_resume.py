"""An interrupted, resumed run ends bit-identical to an uninterrupted one (adapters, optimizer, sampler)."""

from __future__ import annotations

import pytest
import torch
from transformers import Trainer, TrainerCallback, TrainingArguments

from peft_qfa import QFASamplerCallback
from peft_qfa.train import AVG_BITS_LOG_KEY

TOTAL_STEPS = 6
STOP_AT = 3


class StopAt(TrainerCallback):
    """Stops training after optimizer step ``step`` (the checkpoint of that step is still written)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def run(model, dataset, output_dir, callbacks, restore_callbacks=False, resume_from=None, save_steps=None):
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=TOTAL_STEPS,
        per_device_train_batch_size=2,
        learning_rate=1e-2,  # linear decay: the scheduler state must be resumed too
        weight_decay=0.01,
        report_to=[],
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        use_cpu=True,
        logging_steps=2,
        disable_tqdm=True,
        seed=0,
        data_seed=0,
        restore_callback_states_from_checkpoint=restore_callbacks,
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, callbacks=callbacks)
    trainer.train(resume_from_checkpoint=resume_from)
    return trainer


def adapters(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def sampler_callback(trainer) -> QFASamplerCallback:
    return next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, QFASamplerCallback))


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory, make_qfa_model, make_lm_dataset):
    """An uninterrupted run, and a run of the same settings stopped (and checkpointed) halfway."""
    tmp_path = tmp_path_factory.mktemp("resume")
    dataset = make_lm_dataset(24)
    straight_model = make_qfa_model()
    initial = adapters(straight_model)
    straight = run(straight_model, dataset, tmp_path / "straight", [QFASamplerCallback(seed=1)])
    interrupted_model = make_qfa_model()
    run(interrupted_model, dataset, tmp_path / "run", [QFASamplerCallback(seed=1), StopAt(STOP_AT)], save_steps=STOP_AT)
    return {
        "dataset": dataset,
        "initial": initial,
        "straight": straight,
        "final": adapters(straight_model),
        "halfway": adapters(interrupted_model),
        "checkpoint": tmp_path / "run" / f"checkpoint-{STOP_AT}",
    }


def test_the_reference_runs_trained(reference_runs):
    initial, final, halfway = reference_runs["initial"], reference_runs["final"], reference_runs["halfway"]
    assert reference_runs["checkpoint"].is_dir()
    # the run moved on after the checkpoint, so the equality below is not the trivial one
    assert any(not torch.equal(halfway[n], final[n]) for n in final)
    # 2- and 4-bit adapters trained (the wave starts at 4 bits and reaches 2 at half a period)
    assert any(not torch.equal(initial[n], final[n]) for n in final if n.endswith(".b2"))
    assert any(not torch.equal(initial[n], final[n]) for n in final if n.endswith(".b4"))


@pytest.mark.parametrize("restore_callbacks", [False, True], ids=["counts-read-by-callback", "trainer-restores-callback"])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(
    tmp_path, reference_runs, make_qfa_model, restore_callbacks
):
    resumed_model = make_qfa_model()
    assert all(torch.equal(p, reference_runs["initial"][n]) for n, p in adapters(resumed_model).items())
    resumed = run(
        resumed_model,
        reference_runs["dataset"],
        tmp_path / "run",
        [QFASamplerCallback(seed=1)],
        restore_callbacks,
        resume_from=str(reference_runs["checkpoint"]),
    )
    assert resumed.state.global_step == TOTAL_STEPS

    final_straight, final_resumed = reference_runs["final"], adapters(resumed_model)
    assert final_straight.keys() == final_resumed.keys()
    for name, value in final_straight.items():
        assert torch.equal(value, final_resumed[name]), name

    straight = reference_runs["straight"]
    straight_cb, resumed_cb = sampler_callback(straight), sampler_callback(resumed)
    assert resumed_cb.bit_counts == straight_cb.bit_counts
    assert sum(resumed_cb.bit_counts["model.layers.0"].values()) == TOTAL_STEPS
    assert resumed_cb.sampler.config() == straight_cb.sampler.config()

    def logged(trainer):
        return [(e["step"], e[AVG_BITS_LOG_KEY]) for e in trainer.state.log_history if AVG_BITS_LOG_KEY in e]

    assert logged(resumed) == logged(straight)
