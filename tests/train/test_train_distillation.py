"""Distillation from the float teacher: the loss, its gradients, the three teachers, and exact resume."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainingArguments

from peft_qfa import QFASamplerCallback
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.train.distillation import (
    CACHE_INDEX_COLUMN,
    CachedTopKTeacher,
    DistillationConfig,
    FloatTeacher,
    QFADistillationTrainer,
    SubnetTeacher,
    cache_teacher_topk,
    kl_loss,
    topk_kl_loss,
)

from .test_train_resume import StopAt, adapters

TOTAL_STEPS, STOP_AT = 6, 3


def _logits(seed, shape=(2, 5, 11)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3


def test_kl_is_zero_when_student_equals_teacher_and_positive_otherwise():
    logits = _logits(0)
    assert kl_loss(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(logits, _logits(1), temperature=2.0).item() > 0


def test_topk_kl_is_zero_for_equal_distributions_and_exact_with_the_full_vocabulary():
    student, teacher = _logits(0), _logits(1)
    top = torch.log_softmax(student, -1).topk(4, dim=-1)
    assert topk_kl_loss(student, top.values, top.indices).item() == pytest.approx(0.0, abs=1e-6)
    full = torch.log_softmax(teacher / 2, -1).topk(11, dim=-1)
    assert topk_kl_loss(student, full.values, full.indices, temperature=2.0).item() == pytest.approx(
        kl_loss(student, teacher, temperature=2.0).item(), rel=1e-5
    )


def test_masked_positions_do_not_count():
    student, teacher = _logits(0), _logits(1)
    mask = torch.ones(2, 5, dtype=torch.bool)
    mask[1] = False
    assert kl_loss(student, teacher, mask=mask).item() == pytest.approx(kl_loss(student[:1], teacher[:1]).item())


@pytest.mark.parametrize(
    "kwargs, message",
    [({"teacher": "gpt"}, "unknown `teacher='gpt'`"), ({"kl_weight": 1.5}, r"`kl_weight` must lie in \[0, 1\]"),
     ({"temperature": 0}, "`temperature` must be > 0"), ({"top_k": 0}, "`top_k` must be a positive int")],
)
def test_config_refuses_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillationConfig(**kwargs)


def _trainer(model, teacher, dataset, output_dir, config=None, callbacks=(), save_steps=None, **args):
    arguments = TrainingArguments(
        output_dir=str(output_dir), max_steps=TOTAL_STEPS, per_device_train_batch_size=2, learning_rate=1e-2,
        weight_decay=0.01, report_to=[], save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500,
        use_cpu=True, logging_steps=2, disable_tqdm=True, seed=0, data_seed=0, remove_unused_columns=False, **args,
    )
    return QFADistillationTrainer(
        model=model, args=arguments, train_dataset=dataset, callbacks=list(callbacks), teacher=teacher,
        distillation=config or DistillationConfig(),
    )


def test_distillation_loss_is_zero_when_the_student_is_the_teacher(tmp_path, make_qfa_model, make_lm_dataset):
    model = make_qfa_model()  # fresh adapters are the identity, so the all-4 subnet's output is its own teacher's
    teacher = make_qfa_model()
    batch = {k: torch.stack([row[k] for row in make_lm_dataset(2)]) for k in ("input_ids", "labels")}
    trainer = _trainer(model, FloatTeacher(teacher), [], tmp_path)
    assert trainer.compute_loss(model, batch).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("teacher_kind", ["float", "subnet", "cached"])
def test_gradient_reaches_only_the_active_bit_widths_adapters(tmp_path, tiny_model_dir, make_qfa_model, make_lm_dataset,
                                                              teacher_kind):
    model = make_qfa_model()
    rows = make_lm_dataset(2)
    batch = {k: torch.stack([row[k] for row in rows]) for k in ("input_ids", "labels")}
    float_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    if teacher_kind == "float":
        teacher = FloatTeacher(float_model)
    elif teacher_kind == "subnet":
        teacher = SubnetTeacher()
        for name, param in model.named_parameters():  # non-identity 4-bit adapters: the teacher differs from all-2
            if name.endswith(".b4"):
                param.data.normal_(0, 0.5)
    else:
        teacher = CachedTopKTeacher(cache_teacher_topk(float_model, batch["input_ids"], top_k=8, temperature=2.0))
        batch[CACHE_INDEX_COLUMN] = torch.tensor([0, 1])
    for layer in find_bit_layers(model).values():
        layer.active_bits = 2
    trainer = _trainer(model, teacher, [], tmp_path, DistillationConfig(teacher=teacher_kind, temperature=2.0))
    trainer.compute_loss(model, batch).backward()

    grads = {name: p.grad for name, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and g.abs().sum() > 0 for n, g in grads.items() if n.endswith(".b2") and "qfa_B" in n)
    assert all(g is None for n, g in grads.items() if not n.endswith(".b2"))
    assert all(layer.active_bits == 2 for layer in find_bit_layers(model).values())  # the student's subnet is back


def test_subnet_teacher_steps_aside_when_the_sampled_subnet_is_the_teacher(make_qfa_model, make_lm_dataset):
    model = make_qfa_model()
    batch = {"input_ids": torch.stack([row["input_ids"] for row in make_lm_dataset(2)])}
    assert SubnetTeacher().target(model, batch, None) is None  # fresh models run every layer at 4 bits
    layers = list(find_bit_layers(model).values())
    layers[0].active_bits = 3
    assert SubnetTeacher().target(model, batch, None) is not None
    assert layers[0].active_bits == 3 and all(layer.active_bits == 4 for layer in layers[1:])


def test_cached_teacher_without_the_index_column_says_how_to_add_it(make_qfa_model, make_lm_dataset):
    teacher = CachedTopKTeacher(cache_teacher_topk(make_qfa_model(), torch.stack([make_lm_dataset(1)[0]["input_ids"]]), 4))
    with pytest.raises(ValueError, match="remove_unused_columns=False"):
        teacher.target(None, {"input_ids": torch.zeros(1, 4, dtype=torch.long)}, None)


def _indexed(dataset):
    return [{**row, CACHE_INDEX_COLUMN: torch.tensor(i)} for i, row in enumerate(dataset)]


@pytest.mark.parametrize("teacher_kind", ["float", "subnet", "cached"])
def test_resumed_distillation_run_is_bit_identical(tmp_path, tiny_model_dir, make_qfa_model, make_lm_dataset,
                                                   teacher_kind):
    dataset = _indexed(make_lm_dataset(24))
    config = DistillationConfig(teacher=teacher_kind, kl_weight=0.7, temperature=2.0)

    def teacher():
        float_model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        if teacher_kind == "float":
            return FloatTeacher(float_model.to(torch.bfloat16))
        if teacher_kind == "cached":
            ids = torch.stack([row["input_ids"] for row in dataset])
            return CachedTopKTeacher(cache_teacher_topk(float_model, ids, top_k=8, temperature=2.0))
        return SubnetTeacher()

    straight_model = make_qfa_model()
    initial = adapters(straight_model)
    _trainer(straight_model, teacher(), dataset, tmp_path / "straight", config, [QFASamplerCallback(seed=1)]).train()
    interrupted = make_qfa_model()
    _trainer(interrupted, teacher(), dataset, tmp_path / "run", config, [QFASamplerCallback(seed=1), StopAt(STOP_AT)],
             save_steps=STOP_AT).train()
    resumed = make_qfa_model()
    _trainer(resumed, teacher(), dataset, tmp_path / "run", config, [QFASamplerCallback(seed=1)]).train(
        resume_from_checkpoint=str(tmp_path / "run" / f"checkpoint-{STOP_AT}")
    )
    final, again = adapters(straight_model), adapters(resumed)
    assert any(not torch.equal(initial[n], final[n]) for n in final)
    assert all(torch.equal(final[n], again[n]) for n in final)
