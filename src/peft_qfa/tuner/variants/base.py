"""``QFAVariant``: the interface every QFA adapter method implements, and the tensor helpers they share.

A variant is a stateless strategy class, as PEFT keeps DoRA apart from plain LoRA (``LoraVariant``):
its parameters live in the layer's ``ModuleDict``s (``qfa_A``, ``qfa_B``, ``qfa_scales``,
``qfa_offsets``; one ``ParameterDict`` per adapter name, keyed ``b{bits}``), so PEFT's generic
code (``set_adapter``, saving, deleting) handles them, and the variant only says how to create
them, how the layer computes with them at one bit-width, and which integer weight it deploys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ...quant import QuantizedWeight


class QFAVariant:
    """One adapter method of the QFA tuner (QA-LoRA, PEQA, L4Q, LR-QAT).

    ``adds_to_base`` variants return an output added to the frozen layer's (QA-LoRA); the others
    replace the layer's weight by a trained, fake-quantized one and return the whole output.
    """

    name: ClassVar[str]
    deploy_note: ClassVar[str]
    """How a materialized layer holds the adapter, for the model card ("... folded into the zero points")."""
    adds_to_base: ClassVar[bool] = False
    folds_in_place: ClassVar[bool] = False
    """Whether ``merge()`` can fold the adapter into the supernet's own zero points (QA-LoRA only)."""

    @classmethod
    def check(cls, layer: nn.Module, r: int, mergeable: bool, layer_name: str | None = None) -> None:
        """Refuse a supernet layer (``QFALinear``) the variant cannot adapt, before any module is replaced."""

    @classmethod
    def create(
        cls, layer: nn.Module, adapter_name: str, keys: tuple[str, ...], factory: Mapping[str, Any]
    ) -> dict[str, nn.ParameterDict]:
        """``{ModuleDict name: ParameterDict}`` of fresh (uninitialised) parameters for ``keys`` (``b{bits}``).

        The layer's settings of ``adapter_name`` (``layer.r``, ``layer.mergeable``, ...) are already set."""
        raise NotImplementedError

    @classmethod
    def reset(cls, layer: nn.Module, adapter_name: str, init_weights: bool) -> None:
        """Initialise the parameters of ``adapter_name`` (called unless they come from a checkpoint)."""
        raise NotImplementedError

    @classmethod
    def forward(cls, layer: nn.Module, adapter_name: str, x: torch.Tensor, bits: int) -> torch.Tensor:
        """The adapter's output at ``bits`` (added to the base output when ``adds_to_base``, else the output)."""
        raise NotImplementedError

    @classmethod
    def deployed(cls, layer: nn.Module, adapter_name: str, qweight: QuantizedWeight) -> QuantizedWeight:
        """What the layer computes at ``qweight.bits`` as codes, float scales and float zeros."""
        raise NotImplementedError

    @classmethod
    def trainable_parameters(cls, in_features: int, out_features: int, group_size: int, r: int) -> int:
        """Trainable parameters of one layer at one bit-width (the cost of a per-bit-width copy)."""
        raise NotImplementedError


def parameter(layer: nn.Module, dict_name: str, adapter_name: str, bits: int) -> nn.Parameter:
    """The ``dict_name`` parameter of ``adapter_name`` at ``bits`` (e.g. ``layer.qfa_scales[name]["b3"]``)."""
    return getattr(layer, dict_name)[adapter_name][f"b{bits}"]


def round_ste(values: torch.Tensor) -> torch.Tensor:
    """``round`` in the forward pass, the identity in the backward pass (the straight-through estimator)."""
    return values + (torch.round(values) - values).detach()


def scale_grad(values: torch.Tensor, factor: float) -> torch.Tensor:
    """``values`` in the forward pass, its gradient times ``factor`` in the backward (LSQ's gradient scale)."""
    scaled = values * factor
    return (values - scaled).detach() + scaled


def per_group(tensor: torch.Tensor, group_size: int) -> torch.Tensor:
    """``[out, in]`` as ``[out, in // group_size, group_size]``, so a ``[out, groups, 1]`` grid broadcasts."""
    return tensor.unflatten(-1, (tensor.shape[-1] // group_size, group_size))


def reference_weight(layer: nn.Module) -> torch.Tensor:
    """The highest-precision copy of the weight the supernet holds: its top bit-width, dequantized (fp32).

    The supernet keeps no float weight. Variants that re-quantize a weight (L4Q, LR-QAT) start from this
    copy; a supernet built with an extra 8-bit candidate (``bits=(2, 3, 4, 8)``) makes it near-lossless.
    """
    base = layer.get_base_layer()
    return base.quantized(max(base.candidate_bits)).dequantize(torch.float32)


def fake_quant_linear(layer: nn.Module, x: torch.Tensor, weight_fn, *tensors: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, weight_fn(*tensors)) + bias``; with a gradient, the weight is recomputed in backward.

    Activation checkpointing around the weight and the matmul keeps the trained weight (a full ``[out, in]``
    float matrix per layer) out of memory between forward and backward, as LR-QAT does; only ``x`` and the
    small trained tensors are saved.
    """
    bias = layer.get_base_layer().bias

    def run(inputs: torch.Tensor, *args: torch.Tensor) -> torch.Tensor:
        weight = weight_fn(*args)
        return F.linear(inputs, weight.to(inputs.dtype), None if bias is None else bias.to(inputs.dtype))

    if torch.is_grad_enabled() and any(t.requires_grad for t in (x, *tensors)):
        return checkpoint(run, x, *tensors, use_reentrant=False)
    return run(x, *tensors)


__all__ = [
    "QFAVariant",
    "fake_quant_linear",
    "parameter",
    "per_group",
    "reference_weight",
    "round_ste",
    "scale_grad",
]
