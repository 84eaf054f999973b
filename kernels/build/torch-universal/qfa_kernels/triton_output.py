"""The epilogue both Triton kernels end with: add the bias, cast, store the output tile.

Kept in one place because it carries a numerics rule every backend must share with
:func:`.reference.reference_linear`: the bias is added to the float32 accumulator, and only the sum
is rounded to the output dtype.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def store_output_tile(
    acc,
    bias_ptr,
    out_ptr,
    ms,
    m_mask,
    rows,
    row_mask,
    stride_om,
    stride_on,
    HAS_BIAS: tl.constexpr,
):
    """Write ``acc`` (float32 ``[BLOCK_M, BLOCK_N]``) plus bias to rows ``ms`` x columns ``rows`` of ``out``.

    ``ms`` index the rows of ``x`` and ``out``, ``rows`` the weight rows (output columns); masked
    positions are not written. ``bias_ptr`` is read only when ``HAS_BIAS``.
    """
    if HAS_BIAS:
        acc += tl.load(bias_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)[None, :]
    out = out_ptr + ms[:, None].to(tl.int64) * stride_om + rows[None, :] * stride_on
    tl.store(out, acc.to(out_ptr.dtype.element_ty), mask=m_mask[:, None] & row_mask[None, :])
