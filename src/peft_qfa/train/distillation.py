"""Distillation from the float teacher: train each sampled subnet to match the model it was quantized from.

When a supernet is trained to deploy *the same model smaller*, the best target is not the next token
of the training text but the full next-token distribution of the original float model: it carries
what the model knows about every other continuation, so training on a narrow corpus does not pull
the subnets away from the model's general behaviour (LLM-QFA and QA-LoRA train on the LM loss; the
objective here is the standard knowledge-distillation KL, Hinton et al. 2015).

The loss of one micro-batch is

    kl_weight * T**2 * KL(p_teacher(T) || p_student(T)) + (1 - kl_weight) * LM loss

averaged over the predicted tokens (positions whose shifted label is not -100). ``T`` is the
temperature. Three teachers:

* :class:`FloatTeacher`: the float model, frozen, run without gradients (``bfloat16`` halves its
  memory);
* :class:`CachedTopKTeacher`: the float model's top-k log-probabilities per token, computed once
  before training (:func:`cache_teacher_topk`), for models that do not fit twice. The KL runs over
  the k cached tokens plus one bucket for the rest of the vocabulary, so it is zero when the student
  equals the teacher and exact when ``k`` is the vocabulary size;
* :class:`SubnetTeacher`: no float model at all: the supernet's own all-highest-bits subnet (with
  its adapters) is the teacher ("in-place distillation", as in once-for-all training). It runs the
  teacher subnet, then restores the sampled one for the student. When the sampled subnet *is* the
  teacher subnet, the KL has no gradient, so that step trains on the LM loss alone.

:class:`QFADistillationTrainer` is a ``Trainer`` whose ``compute_loss`` runs the teacher and then
the student; the :class:`~peft_qfa.train.QFASamplerCallback` samples the subnet as usual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer

from ..supernet.layer import find_bit_layers

TEACHERS = ("float", "cached", "subnet")
CACHE_INDEX_COLUMN = "teacher_index"
"""Dataset column holding each example's row in a :class:`CachedTopKTeacher`'s cache."""


@dataclass
class DistillationConfig:
    """Settings of the distillation objective.

    Args:
        teacher (`str`, *optional*, defaults to `"float"`):
            ``"float"`` (the float model, no gradients), ``"cached"`` (its top-k log-probabilities
            computed before training) or ``"subnet"`` (the supernet's all-highest-bits subnet).
        temperature (`float`, *optional*, defaults to 1.0):
            Softens both distributions; the KL is multiplied by ``temperature**2`` so that its gradient
            keeps its scale.
        kl_weight (`float`, *optional*, defaults to 1.0):
            Weight of the KL in ``[0, 1]``; the LM loss gets ``1 - kl_weight``.
        top_k (`int`, *optional*, defaults to 64):
            Tokens per position kept by the ``"cached"`` teacher.
    """

    teacher: Literal["float", "cached", "subnet"] = field(
        default="float", metadata={"help": "float | cached | subnet"}
    )
    temperature: float = field(default=1.0, metadata={"help": "KL temperature (> 0)."})
    kl_weight: float = field(default=1.0, metadata={"help": "Weight of the KL; the LM loss gets 1 - kl_weight."})
    top_k: int = field(default=64, metadata={"help": "Tokens per position kept by the cached teacher."})

    def __post_init__(self):
        if self.teacher not in TEACHERS:
            raise ValueError(f"DistillationConfig: unknown `teacher={self.teacher!r}`; choose one of {TEACHERS}.")
        if not self.temperature > 0:
            raise ValueError(f"DistillationConfig: `temperature` must be > 0, got {self.temperature!r}.")
        if not 0 <= self.kl_weight <= 1:
            raise ValueError(f"DistillationConfig: `kl_weight` must lie in [0, 1], got {self.kl_weight!r}.")
        if isinstance(self.top_k, bool) or not isinstance(self.top_k, int) or self.top_k < 1:
            raise ValueError(f"DistillationConfig: `top_k` must be a positive int, got {self.top_k!r}.")


# ---------------------------------------------------------------------------------------------- losses
def _prediction_mask(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Which positions of ``logits[:, :-1]`` predict a token: the shifted labels that are not -100."""
    if labels is None:
        return torch.ones(logits.shape[:-1], dtype=torch.bool, device=logits.device)[:, :-1]
    return labels[:, 1:] != -100


def kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``T**2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the ``mask``ed positions.

    Logits are ``[..., vocab]``; ``mask`` (optional) has the leading shape.
    """
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    teacher = F.log_softmax(teacher_logits.float() / temperature, dim=-1)
    per_token = (teacher.exp() * (teacher - student)).sum(-1)
    return temperature**2 * _masked_mean(per_token, mask)


def topk_kl_loss(
    student_logits: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    teacher_indices: torch.Tensor,
    temperature: float = 1.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The KL over the teacher's top-k tokens plus one bucket for all other tokens.

    ``teacher_logprobs``/``teacher_indices`` are ``[..., k]``: the teacher's log-probabilities at
    ``temperature`` (over the full vocabulary) of its k most likely tokens.
    """
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    student_top = student.gather(-1, teacher_indices.long())
    teacher_top = teacher_logprobs.float()
    p_top = teacher_top.exp()
    per_token = (p_top * (teacher_top - student_top)).sum(-1)
    # The rest of the vocabulary as one bucket: sum(p) is at most 1 up to rounding, hence the clamps.
    tail_teacher = (1 - p_top.sum(-1)).clamp(min=0)
    tail_student = (1 - student_top.exp().sum(-1)).clamp(min=1e-12)
    per_token = per_token + torch.where(
        tail_teacher > 0, tail_teacher * (tail_teacher.clamp(min=1e-12).log() - tail_student.log()), 0.0
    )
    return temperature**2 * _masked_mean(per_token, mask)


def lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy, averaged over the labels that are not -100 (as the model computes it)."""
    return F.cross_entropy(
        logits[:, :-1].float().reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1), ignore_index=-100
    )


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1)


# ---------------------------------------------------------------------------------------------- teachers
class Teacher:
    """What the student matches: :meth:`target` returns the teacher's output for one micro-batch, or
    ``None`` when this step has nothing to distil (the student then trains on the LM loss)."""

    def target(self, model: nn.Module, inputs: Mapping[str, torch.Tensor], index: torch.Tensor | None):
        raise NotImplementedError

    def loss(self, student_logits, target, temperature, mask) -> torch.Tensor:
        return kl_loss(student_logits[:, :-1], target[:, :-1], temperature, mask)


class FloatTeacher(Teacher):
    """The float model (any dtype, e.g. ``bfloat16``), frozen and in eval mode, run without gradients."""

    def __init__(self, model: nn.Module):
        self.model = model.eval().requires_grad_(False)

    @torch.no_grad()
    def target(self, model, inputs, index):
        device = next(model.parameters()).device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        return self.model(**{k: v for k, v in inputs.items() if k != "labels"}).logits


class SubnetTeacher(Teacher):
    """In-place teacher: the supernet's own subnet with every layer at its highest bit-width."""

    @torch.no_grad()
    def target(self, model, inputs, index):
        layers = list(find_bit_layers(model).values())
        if not layers:
            raise ValueError("SubnetTeacher: the model has no QFA layers; use a float or cached teacher.")
        sampled = [layer.active_bits for layer in layers]
        highest = [max(layer.candidate_bits) for layer in layers]
        if sampled == highest:
            return None
        was_training = model.training
        model.eval()
        try:
            for layer, bits in zip(layers, highest, strict=True):
                layer.active_bits = bits
            return model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        finally:
            for layer, bits in zip(layers, sampled, strict=True):
                layer.active_bits = bits
            model.train(was_training)


@dataclass
class TopKCache:
    """The float teacher's top-k log-probabilities ``[n, seq, k]`` (fp32) and token ids (int64) per example."""

    logprobs: torch.Tensor
    indices: torch.Tensor
    temperature: float

    def save(self, path) -> None:
        torch.save({"logprobs": self.logprobs, "indices": self.indices, "temperature": self.temperature}, path)

    @classmethod
    def load(cls, path) -> TopKCache:
        data = torch.load(path, weights_only=True)
        return cls(data["logprobs"], data["indices"], float(data["temperature"]))


@torch.no_grad()
def cache_teacher_topk(
    model: nn.Module, input_ids: torch.Tensor, top_k: int, temperature: float = 1.0, batch_size: int = 8
) -> TopKCache:
    """Run the float ``model`` once over ``input_ids [n, seq]`` and keep each position's top-k log-probabilities.

    Row ``i`` of the cache belongs to row ``i`` of ``input_ids``; give the training dataset a
    ``teacher_index`` column with that row number (:data:`CACHE_INDEX_COLUMN`).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    values, indices = [], []
    try:
        for batch in input_ids.split(batch_size):
            logits = model(input_ids=batch.to(device)).logits.float()
            logprobs = F.log_softmax(logits / temperature, dim=-1)
            top = logprobs.topk(min(top_k, logprobs.shape[-1]), dim=-1)
            values.append(top.values.cpu())
            indices.append(top.indices.cpu())
    finally:
        model.train(was_training)
    return TopKCache(torch.cat(values), torch.cat(indices), float(temperature))


class CachedTopKTeacher(Teacher):
    """Reads the float teacher's top-k log-probabilities of each example from a :class:`TopKCache`."""

    def __init__(self, cache: TopKCache):
        self.cache = cache

    def target(self, model, inputs, index):
        if index is None:
            raise ValueError(
                f"CachedTopKTeacher: the batch has no `{CACHE_INDEX_COLUMN}` column. Add the row numbers of the "
                f"cache to the dataset (`dataset.add_column('{CACHE_INDEX_COLUMN}', range(n))`) and pass "
                "`TrainingArguments(remove_unused_columns=False)` so that the Trainer keeps it."
            )
        rows = index.cpu().long()
        device = inputs["input_ids"].device
        return self.cache.logprobs[rows].to(device), self.cache.indices[rows].to(device)

    def loss(self, student_logits, target, temperature, mask):
        if temperature != self.cache.temperature:
            raise ValueError(
                f"CachedTopKTeacher: the cache holds log-probabilities at temperature {self.cache.temperature}, "
                f"the loss asks for {temperature}; rebuild the cache at that temperature."
            )
        logprobs, indices = target
        return topk_kl_loss(student_logits[:, :-1], logprobs[:, :-1], indices[:, :-1], temperature, mask)


# ---------------------------------------------------------------------------------------------- trainer
class QFADistillationTrainer(Trainer):
    """A ``Trainer`` whose loss distils ``teacher`` into the sampled subnet (see the module docstring).

    Use it like ``Trainer`` with two more arguments, ``teacher`` (a :class:`Teacher`) and
    ``distillation`` (a :class:`DistillationConfig`), and a :class:`~peft_qfa.train.QFASamplerCallback`.
    The loss is a mean over the micro-batch's predicted tokens; the Trainer divides it by the number
    of accumulation steps.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, *args, teacher: Teacher, distillation: DistillationConfig | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        # The loss is a per-micro-batch mean, so the Trainer must divide it by the accumulation steps.
        # transformers >= 5.19 reads `loss_is_scaled_for_ga` (above); older ones divide only when the model
        # "does not accept loss kwargs", and otherwise left our loss scaled by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        if not isinstance(teacher, Teacher):
            raise TypeError(f"QFADistillationTrainer: `teacher` must be a Teacher, got {type(teacher).__name__}.")
        self.teacher = teacher
        self.distillation = distillation or DistillationConfig()

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        labels = inputs.pop("labels", None)
        index = inputs.pop(CACHE_INDEX_COLUMN, None)
        config = self.distillation
        # The teacher runs first: the in-place teacher switches subnets and must be done before the
        # student's forward builds its graph.
        target = None
        if config.kl_weight > 0:
            target = self.teacher.target(self.accelerator.unwrap_model(model), inputs, index)
        outputs = model(**inputs)
        logits = outputs.logits
        kl_weight = config.kl_weight if target is not None else 0.0
        if kl_weight < 1 and labels is None:
            raise ValueError("QFADistillationTrainer: the LM part of the loss needs `labels` in the batch.")
        loss = 0.0
        if kl_weight > 0:
            mask = _prediction_mask(logits, labels)
            loss = kl_weight * self.teacher.loss(logits, target, config.temperature, mask)
        if kl_weight < 1:
            loss = loss + (1 - kl_weight) * lm_loss(logits, labels)
        return (loss, outputs) if return_outputs else loss


# ---------------------------------------------------------------------------------------------- recipe
def prepare_teacher(config: DistillationConfig, model_path: str, dtype: torch.dtype, blocks):
    """The teacher of ``peft-qfa train`` and the training blocks it needs.

    Call it *before* the supernet is built: the ``"cached"`` teacher loads the float model from
    ``model_path``, runs it once over ``blocks`` (a ``datasets.Dataset`` with ``input_ids``), frees
    it, and returns the blocks with the :data:`CACHE_INDEX_COLUMN` column, so that the float model
    and the supernet are never in memory together. ``dtype`` is the float teacher's dtype.
    Returns ``(teacher, blocks)``.
    """
    from transformers import AutoModelForCausalLM

    if config.teacher == "subnet":
        return SubnetTeacher(), blocks
    float_model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    if config.teacher == "float":
        return FloatTeacher(float_model), blocks
    ids = torch.stack([blocks[i]["input_ids"] for i in range(len(blocks))])
    cache = cache_teacher_topk(float_model, ids, config.top_k, config.temperature)
    del float_model
    return CachedTopKTeacher(cache), blocks.add_column(CACHE_INDEX_COLUMN, list(range(len(blocks))))
