"""QA-LoRA (https://arxiv.org/abs/2309.14717): a group-pooled low-rank adapter added to the frozen layer.

``A: r x (in / group_size)`` acts on the input summed over each quantization group, so the update is
constant inside a group and folds exactly into the zero points (:mod:`peft_qfa.tuner.merge`). With
``mergeable=False`` it is plain LoRA (``A: r x in``), for comparison; ``shared_adapters`` gives every
bit-width one pair (the ablation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ...quant import QuantizedWeight
from ..merge import merge_into_quantized
from .base import QFAVariant


def check_rank(
    r: int, in_features: int, group_size: int, mergeable: bool, layer_name: str | None = None
) -> None:
    """Refuse a mergeable adapter whose rank exceeds its number of quantization groups (the columns of A)."""
    n_groups = in_features // group_size
    if mergeable and r > n_groups:
        where = f" for layer `{layer_name}`" if layer_name else ""
        raise ValueError(
            f"QFAConfig: r={r} is larger than in_features / group_size = {in_features} / {group_size} = {n_groups}"
            f"{where}; the mergeable (QA-LoRA) adapter's A has only {n_groups} columns, so its rank cannot exceed "
            f"{n_groups}. Lower `r` to at most {n_groups}, exclude the layer with `exclude_modules`, or use "
            "mergeable=False (plain LoRA, which cannot be merged into the integer weights)."
        )


def group_sum(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Sum ``x [..., in]`` over consecutive groups of ``group_size`` features: ``[..., in // group_size]``."""
    return x.unflatten(-1, (x.shape[-1] // group_size, group_size)).sum(-1)


def lora_pair(
    r: int, in_dim: int, out_features: int, keys: tuple[str, ...], factory: Mapping[str, Any]
) -> dict[str, nn.ParameterDict]:
    """Fresh ``qfa_A`` (``r x in_dim``) and ``qfa_B`` (``out x r``) parameters for ``keys``."""
    return {
        "qfa_A": nn.ParameterDict({key: nn.Parameter(torch.empty(r, in_dim, **factory)) for key in keys}),
        "qfa_B": nn.ParameterDict({key: nn.Parameter(torch.empty(out_features, r, **factory)) for key in keys}),
    }


@torch.no_grad()
def reset_lora_pair(layer: nn.Module, adapter_name: str, init_weights: bool) -> None:
    """A uniform in ``±1/sqrt(in_features)``; B zero (a fresh adapter is the identity) unless ``init_weights=False``.

    The bound is ``nn.Linear``'s default for ``in_features`` inputs in both forms: a mergeable A acts on
    group *sums*, i.e. it is the ``[r, in_features]`` matrix that repeats each column ``group_size`` times,
    so its fan-in is ``in_features``, not ``in_features // group_size``. Both forms start at the same scale.
    """
    bound = 1.0 / math.sqrt(layer.in_features)
    for key, A in layer.qfa_A[adapter_name].items():
        nn.init.uniform_(A, -bound, bound)
        B = layer.qfa_B[adapter_name][key]
        if init_weights:
            nn.init.zeros_(B)
        else:
            nn.init.kaiming_uniform_(B, a=math.sqrt(5))  # nn.Linear's default for B's fan-in r


class QALoRAVariant(QFAVariant):
    """The default: decoupled QA-LoRA adapters added to the frozen integer layer; merged into the zero points."""

    name = "qa-lora"
    deploy_note = "its QA-LoRA adapter folded into the zero points"
    adds_to_base = True
    folds_in_place = True

    @classmethod
    def check(cls, layer, r, mergeable, layer_name=None):
        check_rank(r, layer.in_features, layer.group_size, mergeable, layer_name)

    @classmethod
    def create(cls, layer, adapter_name, keys, factory):
        in_dim = layer.in_features // layer.group_size if layer.mergeable[adapter_name] else layer.in_features
        return lora_pair(layer.r[adapter_name], in_dim, layer.out_features, keys, factory)

    @classmethod
    def reset(cls, layer, adapter_name, init_weights):
        reset_lora_pair(layer, adapter_name, init_weights)

    @classmethod
    def forward(cls, layer, adapter_name, x, bits):
        A, B = layer.adapter_factors(adapter_name, bits)
        x = layer._cast_input_dtype(x, A.dtype)
        x = layer.qfa_dropout[adapter_name](x)
        if layer.mergeable[adapter_name]:
            x = group_sum(x, layer.group_size)
        return F.linear(F.linear(x, A), B) * layer.scaling[adapter_name]

    @classmethod
    def deployed(cls, layer, adapter_name, qweight: QuantizedWeight) -> QuantizedWeight:
        layer._require_mergeable(adapter_name)
        A, B = layer.adapter_factors(adapter_name, qweight.bits)
        return merge_into_quantized(qweight, A, B, layer.scaling[adapter_name])

    @classmethod
    def trainable_parameters(cls, in_features, out_features, group_size, r):
        return r * (in_features // group_size + out_features)


__all__ = ["QALoRAVariant", "check_rank", "group_sum", "lora_pair", "reset_lora_pair"]
