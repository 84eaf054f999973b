"""Triton building blocks shared by the GEMV and GEMM kernels: read packed codes, make floats.

Both kernels walk K in tiles of whole 32-code runs (a run of ``bits``-bit codes is exactly
``bits`` int32 words, see :mod:`.layout`), so a tile never starts in the middle of a word.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def unpack_code_tile(
    packed_ptr,
    rows,
    row_mask,
    stride_row,
    stride_word,
    first_run,
    BLOCK_N: tl.constexpr,
    RUNS: tl.constexpr,
    BITS: tl.constexpr,
):
    """Codes ``[BLOCK_N, RUNS * 32]`` (int32) of ``RUNS`` consecutive runs starting at ``first_run``.

    Masked rows read as code 0.
    """
    MASK: tl.constexpr = (1 << BITS) - 1
    row_base = packed_ptr + rows[:, None].to(tl.int64) * stride_row
    if 32 % BITS == 0:
        # Power-of-two widths never straddle a word: load the tile's words once and fan every word
        # out to its 32 // BITS codes with one shift each (code j of the run is in word j // PER_WORD).
        PER_WORD: tl.constexpr = 32 // BITS
        word_idx = first_run * BITS + tl.arange(0, RUNS * BITS)
        words = tl.load(row_base + word_idx[None, :] * stride_word, mask=row_mask[:, None], other=0)
        shifts = tl.arange(0, PER_WORD) * BITS
        codes = (words[:, :, None] >> shifts[None, None, :]) & MASK  # arithmetic shift is fine: masked
        codes = tl.reshape(codes, (BLOCK_N, RUNS * 32))
    else:
        # Other widths (3 bits) straddle words. Every code fits in one 64-bit window made of two
        # neighbouring words of its run: window i = word i | word i+1 << 32, i = min(first word, BITS-2).
        # Build the BITS-1 windows once per run, pick one per code, then one 64-bit shift per code.
        start = tl.arange(0, 32) * BITS
        window_of_code = tl.minimum(start // 32, BITS - 2)
        shift = (start - window_of_code * 32).to(tl.uint64)
        run_base = row_base + ((first_run + tl.arange(0, RUNS)) * BITS)[None, :] * stride_word
        low = tl.load(run_base, mask=row_mask[:, None], other=0).to(tl.uint32, bitcast=True).to(tl.uint64)
        window = tl.zeros((BLOCK_N, RUNS, 32), dtype=tl.uint64)
        for i in tl.static_range(BITS - 1):
            high = tl.load(run_base + (i + 1) * stride_word, mask=row_mask[:, None], other=0)
            high = high.to(tl.uint32, bitcast=True).to(tl.uint64)
            pair = low | (high << 32)
            window = tl.where((window_of_code == i)[None, None, :], pair[:, :, None], window)
            low = high
        codes = ((window >> shift[None, None, :]) & MASK).to(tl.int32)
        codes = tl.reshape(codes, (BLOCK_N, RUNS * 32))
    return codes


@triton.jit
def codes_to_float(codes):
    """Exact float32 of small non-negative int32 codes without an int-to-float conversion.

    Conversions run at a fraction of the fp32 rate on NVIDIA GPUs and would cap a memory-bound
    GEMV; writing the code into the mantissa of 2**23 and subtracting 2**23 uses an integer OR and
    one fp32 add instead, exact for codes below 2**23.
    """
    return (codes | 0x4B000000).to(tl.float32, bitcast=True) - 8388608.0
