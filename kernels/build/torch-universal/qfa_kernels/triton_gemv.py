"""Decode-shaped kernel (a handful of rows of ``x``): y = x @ dequantize(W)^T, memory-bound.

With one to sixteen rows the weight bytes dominate everything, so the kernel spends as little
arithmetic per weight code as it can: it never dequantizes a weight. Each K tile lies inside one
quantization group, so with ``g`` that group,

    sum_k x[k] * (q[n, k] - z[n, g]) * s[n, g] = s[n, g] * (sum_k x[k] * q[n, k] - z[n, g] * sum_k x[k])

and per code only the unpack, the float conversion and one FMA remain; the zero point and the
scale are applied once per tile and row. Each program owns ``BLOCK_N`` weight rows and walks the
whole of K, so every packed word is read from memory exactly once and no cross-program reduction
(split-K) is needed; small ``BLOCK_N`` configs keep enough programs in flight for large K.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_output import store_output_tile
from .triton_unpack import codes_to_float, unpack_code_tile


@triton.jit
def _wna16_gemv_kernel(
    x_ptr,
    packed_ptr,
    scales_ptr,
    zeros_ptr,
    bias_ptr,
    out_ptr,
    M,
    N,
    K,
    stride_xm,
    stride_xk,
    stride_pn,
    stride_pw,
    stride_sn,
    stride_sg,
    stride_zn,
    stride_zg,
    stride_om,
    stride_on,
    M_BUCKET: tl.constexpr,  # read only by the autotuner cache key
    BITS: tl.constexpr,
    GROUP_SIZE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    # Launcher guarantees: BLOCK_K is a multiple of 32 dividing GROUP_SIZE, and K % BLOCK_K == 0.
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    ms = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = ms < M
    x_rows = x_ptr + ms[:, None].to(tl.int64) * stride_xm

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_rows + ks[None, :] * stride_xk, mask=m_mask[:, None], other=0.0).to(tl.float32)
        codes = unpack_code_tile(
            packed_ptr, rows, row_mask, stride_pn, stride_pw, k0 // 32, BLOCK_N, BLOCK_K // 32, BITS
        )
        q = codes_to_float(codes)
        group = k0 // GROUP_SIZE
        s = tl.load(scales_ptr + rows * stride_sn + group * stride_sg, mask=row_mask, other=0.0)
        z = tl.load(zeros_ptr + rows * stride_zn + group * stride_zg, mask=row_mask, other=0.0)
        xq = tl.sum(x[:, None, :] * q[None, :, :], axis=2)  # [BLOCK_M, BLOCK_N]
        x_sum = tl.sum(x, axis=1)  # [BLOCK_M]
        acc += (xq - x_sum[:, None] * z.to(tl.float32)[None, :]) * s.to(tl.float32)[None, :]

    store_output_tile(acc, bias_ptr, out_ptr, ms, m_mask, rows, row_mask, stride_om, stride_on, HAS_BIAS)
