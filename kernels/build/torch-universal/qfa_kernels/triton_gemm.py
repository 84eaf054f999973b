"""Prefill-shaped kernel (hundreds to thousands of rows): y = x @ dequantize(W)^T on tensor cores.

With many rows the work is compute-bound, so each program dequantizes a ``[BLOCK_N, BLOCK_K]``
weight tile in registers to the activation dtype once and feeds it to ``tl.dot`` with float32
accumulation; the dequantization is amortized over ``BLOCK_M`` rows. Programs are visited in
``GROUP_M``-tall column bands so that consecutive programs reuse the same weight tiles from L2.
A K tile covers either part of one quantization group or a whole number of groups.

``DOT_FP32`` runs the dot on float32 operands at IEEE precision: for float32 activations (instead
of TF32), and for bfloat16 under the CPU interpreter, whose ``tl.dot`` multiplies the raw bfloat16
bit patterns as integers (triton 3.9). The weight is still rounded to bfloat16 first and
bf16 x bf16 products are exact in float32, so that workaround computes the same sum as the GPU.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .triton_output import store_output_tile
from .triton_unpack import codes_to_float, unpack_code_tile


@triton.jit
def _load_group_params(
    ptr,
    rows,
    row_mask,
    stride_n,
    stride_g,
    k0,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_SIZE: tl.constexpr,
):
    """Per-group scales (or zeros) of one K tile, broadcastable to ``[BLOCK_N, BLOCK_K]`` (float32)."""
    row_ptr = ptr + rows[:, None] * stride_n
    if BLOCK_K <= GROUP_SIZE:
        params = tl.load(row_ptr + (k0 // GROUP_SIZE) * stride_g, mask=row_mask[:, None], other=0.0)
    else:
        TILE_GROUPS: tl.constexpr = BLOCK_K // GROUP_SIZE
        groups = k0 // GROUP_SIZE + tl.arange(0, TILE_GROUPS)
        params = tl.load(row_ptr + groups[None, :] * stride_g, mask=row_mask[:, None], other=0.0)
        params = tl.broadcast_to(params[:, :, None], (BLOCK_N, TILE_GROUPS, GROUP_SIZE))
        params = tl.reshape(params, (BLOCK_N, BLOCK_K))
    return params.to(tl.float32)


@triton.jit
def _wna16_gemm_kernel(
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
    DOT_FP32: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    # Launcher guarantees: BLOCK_K is a multiple of 32, K % BLOCK_K == 0, and BLOCK_K divides
    # GROUP_SIZE or is a multiple of it (then GROUP_SIZE is a power of two).
    pid = tl.program_id(0)
    tiles_m = tl.cdiv(M, BLOCK_M)
    tiles_n = tl.cdiv(N, BLOCK_N)
    band = pid // (GROUP_M * tiles_n)
    first_m = band * GROUP_M
    band_height = tl.minimum(tiles_m - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * tiles_n)) % band_height
    pid_n = (pid % (GROUP_M * tiles_n)) // band_height

    ms = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = ms < M
    rows = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < N
    x_rows = x_ptr + ms[:, None].to(tl.int64) * stride_xm

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, K, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        x = tl.load(x_rows + ks[None, :] * stride_xk, mask=m_mask[:, None], other=0.0)
        codes = unpack_code_tile(
            packed_ptr, rows, row_mask, stride_pn, stride_pw, k0 // 32, BLOCK_N, BLOCK_K // 32, BITS
        )
        s = _load_group_params(
            scales_ptr, rows, row_mask, stride_sn, stride_sg, k0, BLOCK_N, BLOCK_K, GROUP_SIZE
        )
        z = _load_group_params(
            zeros_ptr, rows, row_mask, stride_zn, stride_zg, k0, BLOCK_N, BLOCK_K, GROUP_SIZE
        )
        w = ((codes_to_float(codes) - z) * s).to(x_ptr.dtype.element_ty)  # [BLOCK_N, BLOCK_K]
        if DOT_FP32:
            acc = tl.dot(x.to(tl.float32), tl.trans(w).to(tl.float32), acc, input_precision="ieee")
        else:
            acc = tl.dot(x, tl.trans(w), acc)

    store_output_tile(acc, bias_ptr, out_ptr, ms, m_mask, rows, row_mask, stride_om, stride_on, HAS_BIAS)
