"""PEQA (https://arxiv.org/abs/2305.14152): the integer codes stay frozen, only the scales train.

``W = (q - z) * s`` with the supernet's codes ``q`` and zero points ``z`` at the active bit-width and
a trained ``s`` per quantization group (one set per bit-width, initialised to the supernet's own), so
there is nothing to merge: the deployed weight is the same codes with the new scales. The trained
scales are a small, reusable unit (:func:`trained_scales`, :func:`with_scales`) for other variants that
learn a scale next to an adapter.
"""

from __future__ import annotations

import torch
from torch import nn

from ...quant import QuantizedWeight
from .base import QFAVariant, fake_quant_linear, parameter, per_group

SCALES = "qfa_scales"


def trained_scales(layer: nn.Module, keys: tuple[str, ...], factory) -> nn.ParameterDict:
    """One ``[out, in // group_size]`` scale parameter per key, filled by :func:`reset_scales`."""
    n_groups = layer.in_features // layer.group_size
    return nn.ParameterDict({key: nn.Parameter(torch.empty(layer.out_features, n_groups, **factory)) for key in keys})


@torch.no_grad()
def reset_scales(layer: nn.Module, adapter_name: str) -> None:
    """Start every bit-width's trained scales at the supernet's scales of that bit-width."""
    base = layer.get_base_layer()
    for key, scales in layer.qfa_scales[adapter_name].items():
        scales.copy_(base.quantized(int(key[1:])).scales)


def with_scales(qweight: QuantizedWeight, scales: torch.Tensor) -> QuantizedWeight:
    """``qweight`` with other scales (same codes and zero points), stored in its scales' dtype."""
    return QuantizedWeight(
        qweight.packed,
        scales.detach().to(qweight.scales.dtype),
        qweight.zeros,
        qweight.bits,
        qweight.group_size,
        qweight.shape,
    )


class PEQAVariant(QFAVariant):
    """Trained per-group scales over the frozen codes and zero points of each bit-width."""

    name = "peqa"
    deploy_note = "its codes and zero points kept, with the scales PEQA trained"

    @classmethod
    def create(cls, layer, adapter_name, keys, factory):
        return {SCALES: trained_scales(layer, keys, factory)}

    @classmethod
    def reset(cls, layer, adapter_name, init_weights):
        reset_scales(layer, adapter_name)
        if not init_weights:  # tests of merging and saving: a fresh adapter that already changes the output
            with torch.no_grad():
                for scales in layer.qfa_scales[adapter_name].values():
                    scales.mul_(1.0 + 0.1 * torch.rand_like(scales))

    @classmethod
    def forward(cls, layer, adapter_name, x, bits):
        qweight = layer.get_base_layer().quantized(bits)
        codes = qweight.codes()
        zeros = qweight.zeros

        def weight(scales: torch.Tensor) -> torch.Tensor:
            groups = per_group(codes.float(), layer.group_size) - zeros.float().unsqueeze(-1)
            return (groups * scales.float().unsqueeze(-1)).flatten(-2)

        return fake_quant_linear(layer, x, weight, parameter(layer, SCALES, adapter_name, bits))

    @classmethod
    def deployed(cls, layer, adapter_name, qweight):
        return with_scales(qweight, parameter(layer, SCALES, adapter_name, qweight.bits))

    @classmethod
    def trainable_parameters(cls, in_features, out_features, group_size, r):
        return out_features * (in_features // group_size)


__all__ = ["PEQAVariant", "reset_scales", "trained_scales", "with_scales"]
