"""LR-QAT (https://arxiv.org/abs/2406.06385): a low-rank update inside the rounding, in integer-grid units.

``W_hat = s * (clamp(round(phi_inv(Phi0) + scaling * B @ A), 0, 2**b - 1) - z)``: ``Phi0`` is the
reference weight (:func:`reference_weight`, the supernet's top bit-width) in units of the b-bit grid,
``W0 / s0 + z0``, stored once as an int8 fixed-point buffer with ``7 - b`` fractional bits (the paper's
``phi``; our grid is asymmetric, so codes run from 0 to ``2**b - 1`` and 7 bits hold them with
sign bit to spare). ``s`` (one per group, initialised to ``s0``) and ``A``, ``B`` train; ``z0`` stays.
The forward is checkpointed, so ``W_hat`` is recomputed in backward instead of kept.

The merge rounds the integer matrix: codes ``clamp(round(phi_inv(Phi0) + scaling * B @ A))``, scales
``s``, zero points ``z0``; the deployed model is b-bit integers times scales.
"""

from __future__ import annotations

import torch

from ...quant import QuantizedWeight
from .base import QFAVariant, fake_quant_linear, parameter, per_group, reference_weight, round_ste
from .peqa import SCALES, reset_scales, trained_scales
from .qa_lora import lora_pair, reset_lora_pair

FIXED_POINT_BITS = 7
"""Magnitude bits of the int8 ``Phi0`` buffer; a b-bit grid leaves ``7 - b`` of them for the fraction."""


def fixed_point(values: torch.Tensor, bits: int) -> torch.Tensor:
    """``phi``: grid-unit values in ``[0, 2**bits - 1]`` as int8 with ``7 - bits`` fractional bits."""
    step = 2 ** (FIXED_POINT_BITS - bits)
    return torch.round(values.clamp(0, 2**bits - 1) * step).to(torch.int8)


def from_fixed_point(phi: torch.Tensor, bits: int) -> torch.Tensor:
    """``phi_inv``: the int8 buffer back to float grid units."""
    return phi.float() / 2 ** (FIXED_POINT_BITS - bits)


class LRQATVariant(QFAVariant):
    """Low-rank update ``A: r x in``, ``B: out x r`` added to a fixed-point integer weight before rounding."""

    name = "lr-qat"
    deploy_note = "its codes re-rounded with the low-rank update LR-QAT trained inside the rounding, and its learned scales"

    @classmethod
    def check(cls, layer, r, mergeable, layer_name=None):
        too_wide = [b for b in layer.candidate_bits if b >= FIXED_POINT_BITS]
        if too_wide:
            where = f" (layer `{layer_name}`)" if layer_name else ""
            raise ValueError(
                f"QFAConfig(variant='lr-qat') stores the integer weight as an int8 fixed-point buffer, which holds grids "
                f"of at most {FIXED_POINT_BITS - 1} bits; the supernet holds bits={layer.candidate_bits}{where}. Build "
                "it without the 8-bit copy, or use variant='qa-lora' or 'peqa'."
            )

    @classmethod
    def create(cls, layer, adapter_name, keys, factory):
        pair = lora_pair(layer.r[adapter_name], layer.in_features, layer.out_features, keys, factory)
        return {**pair, SCALES: trained_scales(layer, keys, factory)}

    @classmethod
    def reset(cls, layer, adapter_name, init_weights):
        reset_lora_pair(layer, adapter_name, init_weights)
        reset_scales(layer, adapter_name)

    @staticmethod
    @torch.no_grad()
    def phi0(layer, bits: int) -> torch.Tensor:
        """The frozen int8 ``Phi0`` of ``bits``: computed once from the supernet (which never changes) and kept."""
        cache = layer.__dict__.setdefault("_qfa_phi0", {})
        qweight = layer.get_base_layer().quantized(bits)
        if bits not in cache or cache[bits].device != qweight.scales.device:
            units = per_group(reference_weight(layer), layer.group_size) / qweight.scales.float().unsqueeze(-1)
            cache[bits] = fixed_point((units + qweight.zeros.float().unsqueeze(-1)).flatten(-2), bits)
        return cache[bits]

    @classmethod
    def _integers(cls, layer, adapter_name, bits, A, B) -> torch.Tensor:
        update = layer.scaling[adapter_name] * (B.float() @ A.float())
        return round_ste(from_fixed_point(cls.phi0(layer, bits), bits) + update).clamp(0, 2**bits - 1)

    @classmethod
    def forward(cls, layer, adapter_name, x, bits):
        params = [parameter(layer, name, adapter_name, bits) for name in ("qfa_A", "qfa_B", SCALES)]
        zeros = layer.get_base_layer().quantized(bits).zeros

        def weight(A, B, scales):
            ints = per_group(cls._integers(layer, adapter_name, bits, A, B), layer.group_size)
            return ((ints - zeros.float().unsqueeze(-1)) * scales.float().unsqueeze(-1)).flatten(-2)

        return fake_quant_linear(layer, x, weight, *params)

    @classmethod
    @torch.no_grad()
    def deployed(cls, layer, adapter_name, qweight):
        bits = qweight.bits
        A, B, scales = (parameter(layer, n, adapter_name, bits) for n in ("qfa_A", "qfa_B", SCALES))
        codes = cls._integers(layer, adapter_name, bits, A, B).to(torch.uint8)
        return QuantizedWeight.from_codes(
            codes, scales.float(), qweight.zeros.float(), bits, layer.group_size, dtype=qweight.scales.dtype
        )

    @classmethod
    def trainable_parameters(cls, in_features, out_features, group_size, r):
        return r * (in_features + out_features) + out_features * (in_features // group_size)


__all__ = ["LRQATVariant", "fixed_point", "from_fixed_point"]
