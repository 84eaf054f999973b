"""The QA-LoRA merge rule: fold a group-pooled adapter into the zero points of integer weights.

A mergeable QFA adapter sees the input summed over each quantization group of ``g`` columns::

    adapter(x) = scaling * B @ A @ sumpool_g(x),   A: r x (in / g),  B: out x r

which is ``x @ dW^T`` for ``dW[j, k] = c[j, k // g]`` with ``c = scaling * B @ A`` (``out x in/g``):
one constant per output row and quantization group. The integer weight is ``w = (q - z) * s`` per
group, so ``w + c = (q - (z - c / s)) * s``: the merged layer keeps its codes and scales, and only
its zero points move, ``z_new = z - c / s``. Zero points are floats (see :mod:`peft_qfa.quant.grid`)
so the shift is held exactly up to float rounding; it is computed in float32 and stored in the
zero points' dtype, which makes the merge inexact when that dtype is float16/bfloat16.
"""

from __future__ import annotations

import warnings

import torch

from ..quant import QuantizedWeight

_EXACT_ZERO_DTYPES = (torch.float32, torch.float64)


def _check_factors(qweight: QuantizedWeight, lora_A: torch.Tensor, lora_B: torch.Tensor) -> None:
    n_groups = qweight.in_features // qweight.group_size
    if (
        lora_A.dim() != 2
        or lora_B.dim() != 2
        or lora_A.shape[1] != n_groups
        or lora_B.shape[0] != qweight.out_features
    ):
        raise ValueError(
            f"merge_into_quantized: adapter A {tuple(lora_A.shape)} / B {tuple(lora_B.shape)} do not fit the "
            f"{qweight.describe()} weight; a mergeable adapter needs A: r x {n_groups} (in_features / group_size) "
            f"and B: {qweight.out_features} x r."
        )
    if lora_A.shape[0] != lora_B.shape[1]:
        raise ValueError(
            f"merge_into_quantized: A has rank {lora_A.shape[0]} but B has rank {lora_B.shape[1]}."
        )


def merge_into_quantized(
    qweight: QuantizedWeight, lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float
) -> QuantizedWeight:
    """``qweight`` with the adapter ``scaling * B @ A`` folded into its zero points (codes and scales unchanged).

    Args:
        qweight (`QuantizedWeight`): the integer weight of one layer at one bit-width.
        lora_A (`torch.Tensor`): ``[r, in_features // group_size]``, the mergeable (group-pooled) adapter's A.
        lora_B (`torch.Tensor`): ``[out_features, r]``.
        scaling (`float`): the adapter's ``lora_alpha / r``; pass ``-scaling`` to take a merged adapter out again.

    Returns:
        `QuantizedWeight`: same codes and scales, ``zeros - scaling * (B @ A) / scales`` in the zeros' dtype.
    """
    _check_factors(qweight, lora_A, lora_B)
    if qweight.zeros.dtype not in _EXACT_ZERO_DTYPES:
        warnings.warn(
            f"Merging an adapter into {qweight.zeros.dtype} zero points rounds the shift to {qweight.zeros.dtype}: the "
            "merged weights only approximate supernet + adapter. Build the supernet with float32 scales/zeros for an "
            "exact merge.",
            stacklevel=2,
        )
    with torch.no_grad():
        delta = float(scaling) * (lora_B.detach().float() @ lora_A.detach().float())
        zeros = qweight.zeros.detach().float() - delta / qweight.scales.detach().float()
    return qweight.with_zeros(zeros)


__all__ = ["merge_into_quantized"]
