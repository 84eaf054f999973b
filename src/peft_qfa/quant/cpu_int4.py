"""A bfloat16 CPU fast path for packed weights of at most 4 bits: torch's int4 weight-only matmul.

On the CPU the reference path (:func:`peft_qfa.ops.quantized_linear`) unpacks and dequantizes the
whole weight on every call, which makes token-by-token generation several times slower than the
float model. torch ships a CPU kernel for group-wise int4 weights
(``aten._weight_int4pack_mm_for_cpu``). Every 2-, 3- or 4-bit code fits its 4-bit range, and our
grid maps onto its grid exactly: the kernel computes ``(q - 8) * scale + offset`` per group, ours is
``(q - zero) * scale``, so ``offset = (8 - zero) * scale``.

The kernel is fast for bfloat16 activations only (float32 and float16 take a slow path in it), so
only bf16 inputs use it; a float32 model keeps the exact reference path. The repacked copy costs
half a byte per weight of RAM and is never saved. When the path is taken is decided by the backend
dispatcher (:mod:`peft_qfa.ops`; ``QFA_CPU_INT4=0`` turns it off there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .weight import QuantizedWeight

INT4_GROUP_SIZES = (32, 64, 128, 256)
"""The group sizes torch's CPU int4 kernel accepts."""


def cpu_int4_available() -> bool:
    """Whether this torch has the CPU int4 kernel."""
    return (
        hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")
        and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")
    )


def cpu_int4_supports(qweight: QuantizedWeight) -> bool:
    """Whether the kernel can run ``qweight``: at most 4 bits, a group size it knows, rows in 16s."""
    return (
        qweight.bits <= 4
        and qweight.group_size in INT4_GROUP_SIZES
        and qweight.out_features % 16 == 0
        and cpu_int4_available()
    )


@dataclass(frozen=True)
class Int4CpuWeight:
    """``qweight`` repacked for ``aten._weight_int4pack_mm_for_cpu`` (bfloat16 grid)."""

    packed: torch.Tensor  # uint8, the kernel's own layout
    scales_and_offsets: torch.Tensor  # [in // group_size, out, 2] bfloat16
    group_size: int
    in_features: int
    out_features: int

    @classmethod
    def from_quantized(cls, qweight: QuantizedWeight) -> Int4CpuWeight:
        if not cpu_int4_supports(qweight):
            raise ValueError(
                f"The CPU int4 kernel cannot run a {qweight.describe()} weight: it needs at most 4 bits, a "
                f"group size in {INT4_GROUP_SIZES} and out_features divisible by 16 (or this torch lacks the kernel)."
            )
        codes = qweight.codes().cpu().to(torch.int32)
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)
        scales = qweight.scales.cpu().float()
        offsets = (8.0 - qweight.zeros.cpu().float()) * scales
        grid = torch.stack([scales.t(), offsets.t()], dim=-1).to(torch.bfloat16).contiguous()
        return cls(packed, grid, qweight.group_size, qweight.in_features, qweight.out_features)

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W^T + bias`` for bfloat16 ``x [..., in_features]`` on the CPU."""
        if x.dtype != torch.bfloat16 or x.device.type != "cpu":
            raise ValueError(f"Int4CpuWeight.linear takes bfloat16 CPU input, got {x.dtype} on {x.device}.")
        rows = x.reshape(-1, self.in_features).contiguous()
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(
            rows, self.packed, self.group_size, self.scales_and_offsets
        )
        if bias is not None:
            out = out + bias.to(out.dtype)
        return out.reshape(*x.shape[:-1], self.out_features)


__all__ = ["INT4_GROUP_SIZES", "Int4CpuWeight", "cpu_int4_available", "cpu_int4_supports"]
