"""L4Q (https://arxiv.org/abs/2402.04902): the LoRA update is added *before* quantization.

``W_q = s * clamp(round((W0 + scaling * B @ A - b) / s), Q_N, Q_P) + b`` with ``Q_N = -2**(n-1)``,
``Q_P = 2**(n-1) - 1``, a learned step size ``s`` and offset ``b`` per quantization group (LSQ/LSQ+:
straight-through round, the clamp gates the gradient, LSQ's gradient scale ``1 / sqrt(g * Q_P)``), and
L4Q's conservative symmetric init ``s = max(|min W0| / |Q_N|, max W0 / Q_P)``, ``b = 0``.

``W0`` must be a higher-precision weight than the one trained. The supernet holds no float weight, so
L4Q takes its highest bit-width, dequantized inside the checkpointed forward (:func:`reference_weight`):
no extra memory for ``bits=(2, 3, 4)`` (the 4-bit GPTQ copy is the reference of the 2- and 3-bit
adapters, and of the 4-bit one itself), about ``8.5`` bits per weight more for an extra 8-bit candidate
(``bits=(2, 3, 4, 8)``, a near-float reference), against 16 for a bf16 copy. A supernet with a single
bit-width has no higher copy and is refused.

Deployed fully quantized: codes ``w - Q_N``, scales ``s``, zero points ``-Q_N - b / s``.
"""

from __future__ import annotations

import math

import torch

from ...quant import QuantizedWeight
from ...quant.grid import MIN_SCALE
from .base import QFAVariant, fake_quant_linear, parameter, per_group, reference_weight, round_ste, scale_grad
from .qa_lora import lora_pair, reset_lora_pair

SCALES, OFFSETS = "qfa_scales", "qfa_offsets"


def _range(bits: int) -> tuple[int, int]:
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


class L4QVariant(QFAVariant):
    """Plain LoRA (``A: r x in``) inside an LSQ+ quantizer with learned step and offset per group."""

    name = "l4q"
    deploy_note = (
        "its codes re-rounded by the quantizer L4Q trained (LoRA added before quantization), with its learned "
        "scales and offsets"
    )

    @classmethod
    def check(cls, layer, r, mergeable, layer_name=None):
        if len(layer.candidate_bits) < 2:
            where = f" (layer `{layer_name}`)" if layer_name else ""
            only = layer.candidate_bits[0]
            raise ValueError(
                f"QFAConfig(variant='l4q') needs a higher-precision copy of the weight than the bit-width it trains, "
                f"but the supernet holds only bits=({only},){where}. Build it with an extra 8-bit copy, "
                f"QFAQuantizationConfig(bits=({only}, 8)), and train {only} bits (e.g. `--bits {only},8 --schedule "
                f"fixed --fixed-bits {only}`)."
            )

    @classmethod
    def create(cls, layer, adapter_name, keys, factory):
        n_groups = layer.in_features // layer.group_size
        grid = {
            name: torch.nn.ParameterDict(
                {key: torch.nn.Parameter(torch.empty(layer.out_features, n_groups, **factory)) for key in keys}
            )
            for name in (SCALES, OFFSETS)
        }
        return {**lora_pair(layer.r[adapter_name], layer.in_features, layer.out_features, keys, factory), **grid}

    @classmethod
    @torch.no_grad()
    def reset(cls, layer, adapter_name, init_weights):
        reset_lora_pair(layer, adapter_name, init_weights)
        groups = per_group(reference_weight(layer), layer.group_size)
        for key, scales in layer.qfa_scales[adapter_name].items():
            low, high = _range(int(key[1:]))
            init = torch.maximum(groups.amin(-1).abs() / -low, groups.amax(-1).clamp(min=0) / high)
            scales.copy_(init.clamp(min=MIN_SCALE))
            layer.qfa_offsets[adapter_name][key].zero_()

    @staticmethod
    def _integers(layer, adapter_name, bits, weight0, A, B, scales, offsets) -> torch.Tensor:
        """``clamp(round((W0 + scaling * B @ A - b) / s))``, per group ``[out, groups, g]``, in ``[Q_N, Q_P]``."""
        low, high = _range(bits)
        combined = weight0 + layer.scaling[adapter_name] * (B.float() @ A.float())
        values = (per_group(combined, layer.group_size) - offsets.float().unsqueeze(-1)) / scales.float().unsqueeze(-1)
        return round_ste(values.clamp(low, high))

    @classmethod
    def forward(cls, layer, adapter_name, x, bits):
        params = [parameter(layer, name, adapter_name, bits) for name in ("qfa_A", "qfa_B", SCALES, OFFSETS)]
        grad_scale = 1.0 / math.sqrt(layer.group_size * _range(bits)[1])

        def weight(A, B, scales, offsets):
            scales, offsets = scale_grad(scales, grad_scale), scale_grad(offsets, grad_scale)
            ints = cls._integers(layer, adapter_name, bits, reference_weight(layer), A, B, scales, offsets)
            return (ints * scales.float().unsqueeze(-1) + offsets.float().unsqueeze(-1)).flatten(-2)

        return fake_quant_linear(layer, x, weight, *params)

    @classmethod
    @torch.no_grad()
    def deployed(cls, layer, adapter_name, qweight):
        bits = qweight.bits
        A, B, scales, offsets = (parameter(layer, n, adapter_name, bits) for n in ("qfa_A", "qfa_B", SCALES, OFFSETS))
        ints = cls._integers(layer, adapter_name, bits, reference_weight(layer), A, B, scales, offsets)
        low = _range(bits)[0]
        zeros = -low - offsets.float() / scales.float()
        return QuantizedWeight.from_codes(
            (ints - low).flatten(-2).to(torch.uint8), scales.float(), zeros, bits, layer.group_size, dtype=qweight.scales.dtype
        )

    @classmethod
    def trainable_parameters(cls, in_features, out_features, group_size, r):
        return r * (in_features + out_features) + 2 * out_features * (in_features // group_size)


__all__ = ["L4QVariant"]
