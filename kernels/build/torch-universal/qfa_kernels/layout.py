"""The packed weight layout every ``qfa_kernels`` backend reads, stated once.

A weight ``W [N, K]`` (``N`` = out_features, ``K`` = in_features) is stored as integer codes
``q`` in ``[0, 2**bits)``, float per-group ``scales [N, K // group_size]`` and fractional
``zeros [N, K // group_size]``; ``W[n, k] = (q[n, k] - zeros[n, g]) * scales[n, g]`` with
``g = k // group_size``.

Codes are packed row by row along ``K`` as a dense little-endian bit stream in int32 words (the
compressed-tensors 0.20 "dense" order): the row is cut into *runs* of 32 codes (padded with zero
codes), a run fills exactly ``bits`` words, and code ``j`` of a run occupies stream bits
``[j * bits, (j + 1) * bits)``. It starts in word ``(j * bits) // 32`` of the run at shift
``(j * bits) % 32``; when ``shift + bits > 32`` its high bits continue at bit 0 of the next word
(3-bit codes 10 and 21 straddle). Words keep the raw bit pattern, so a word whose top bit is set
reads as a negative int32.

This module imports nothing but the standard library so that validation and docs can use it
without torch or triton being importable.
"""

from __future__ import annotations

RUN = 32
"""Codes per run; a run of ``bits``-bit codes fills exactly ``bits`` int32 words."""

SUPPORTED_BITS: tuple[int, ...] = (2, 3, 4, 8)
"""Bit-widths the layout and every backend accept (the project's quant core packs the same set)."""

TRITON_GROUP_MULTIPLE = 32
"""The Triton kernels read whole runs per K tile, so ``group_size`` must be a multiple of one run."""


def packed_words(cols: int, bits: int) -> int:
    """Number of int32 words one packed row of ``cols`` codes takes."""
    return -(-cols // RUN) * bits
