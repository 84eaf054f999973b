"""Our packed layers as GGUF ``Q4_1`` blocks, exactly (up to the fp16 rounding of ``d`` and ``m``).

A ``Q4_1`` block (ggml's ``block_q4_1``) holds 32 weights of one row as ``w = d * q + m`` with
4-bit codes ``q`` and fp16 ``d``, ``m``; its 20 bytes are ``d``, ``m``, then 16 bytes whose low
nibbles are codes 0-15 and high nibbles codes 16-31. Our grid ``w = (q - z) * s`` is the same
line with ``d = s`` and ``m = -s * z``, and a code of 2, 3 or 4 bits is a valid 4-bit code; a group
of ``g`` inputs (a multiple of 32) becomes ``g / 32`` blocks sharing ``d`` and ``m``. So only the
fp16 storage of ``d`` and ``m`` rounds: the float zero point stays fractional.
"""

from __future__ import annotations

import numpy as np
import torch

from .source import PackedTensors

BLOCK = 32
"""Weights per Q4_1 block."""

MAX_BITS = 4


def check_q4_1(name: str, packed: PackedTensors) -> None:
    """Refuse, with the reason, a layer that Q4_1 cannot hold exactly."""
    if packed.bits > MAX_BITS:
        raise NotImplementedError(
            f"export(format='gguf'): `{name}` has {packed.bits}-bit codes; Q4_1 holds at most {MAX_BITS} bits. "
            "Use gguf_type='F16' (dequantized) for it."
        )
    if packed.group_size % BLOCK:
        raise NotImplementedError(
            f"export(format='gguf'): `{name}` has group size {packed.group_size}; Q4_1 blocks are {BLOCK} weights, "
            "so the group size must be a multiple of 32. Use gguf_type='F16' (dequantized)."
        )


def q4_1_line(packed: PackedTensors) -> tuple[torch.Tensor, torch.Tensor]:
    """Per group ``(d, m)`` in float16: the two numbers a block stores."""
    scales = packed.scales.float()
    return scales.half(), (-scales * packed.zeros.float()).half()


def q4_1_blocks(packed: PackedTensors) -> np.ndarray:
    """``uint8 [out, in / 32 * 20]``: the rows of ``packed`` as Q4_1 blocks (what GGUFWriter stores raw)."""
    out_features, in_features = packed.codes.shape
    blocks_per_group = packed.group_size // BLOCK
    d, m = q4_1_line(packed)
    d = d.repeat_interleave(blocks_per_group, dim=1)  # [out, in / 32]
    m = m.repeat_interleave(blocks_per_group, dim=1)
    codes = packed.codes.to(torch.uint8).reshape(out_features, -1, 2, BLOCK // 2)
    nibbles = codes[:, :, 0] | (codes[:, :, 1] << 4)  # low nibble: codes 0-15, high nibble: codes 16-31
    header = (
        torch.stack([d, m], dim=-1).contiguous().view(torch.uint8)
    )  # [out, in / 32, 4]: d then m, little-endian
    return torch.cat([header, nibbles], dim=-1).reshape(out_features, -1).numpy()


__all__ = ["BLOCK", "check_q4_1", "q4_1_blocks", "q4_1_line"]
