"""Plain-torch unpack, dequantize and linear: the numerics every backend is measured against.

Written for clarity, not speed: each step follows the layout description in :mod:`.layout`
literally, so a reader can check it against the spec line by line. The torch backend of
:func:`qfa_kernels.wna16_linear` is this code, which makes it the CPU path and the fallback for
shapes the Triton kernels do not take.
"""

from __future__ import annotations

import torch

from .layout import RUN, packed_words


def unpack_codes(packed: torch.Tensor, bits: int, cols: int) -> torch.Tensor:
    """Read ``cols`` codes per row out of the packed int32 words.

    Args:
        packed (`torch.Tensor`):
            int32 words ``[rows, packed_words(cols, bits)]`` in the dense bit-stream layout.
        bits (`int`):
            Bits per code.
        cols (`int`):
            Number of codes per row to read (the run padding beyond it is dropped).

    Returns:
        `torch.Tensor`: uint8 codes ``[rows, cols]``.
    """
    if packed.dim() != 2 or packed.dtype != torch.int32:
        raise ValueError(
            f"unpack_codes: `packed` must be a 2-D int32 tensor, got shape {tuple(packed.shape)} and "
            f"dtype {packed.dtype}."
        )
    if packed.shape[1] != packed_words(cols, bits):
        raise ValueError(
            f"unpack_codes: {packed.shape[1]} words per row cannot hold {cols} {bits}-bit codes; "
            f"expected {packed_words(cols, bits)}."
        )
    # int64 holding the unsigned 32-bit pattern, so right shifts bring in zeros, not the sign bit.
    words = packed.to(torch.int64) & 0xFFFFFFFF
    col = torch.arange(cols, device=packed.device)
    first_bit = (col // RUN) * (RUN * bits) + (col % RUN) * bits  # position in the row's bit stream
    word, shift = first_bit // 32, first_bit % 32
    low = words[:, word] >> shift
    # A code that runs past bit 31 continues at bit 0 of the next word.
    straddles = shift + bits > 32
    next_word = torch.where(straddles, word + 1, word)
    high = torch.where(straddles, words[:, next_word] << (32 - shift), torch.zeros_like(low))
    return ((low | high) & (2**bits - 1)).to(torch.uint8)


def dequantize(
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    bits: int,
    group_size: int,
    in_features: int,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """The float weight ``W[n, k] = (q[n, k] - zeros[n, k // group_size]) * scales[n, k // group_size]``.

    Args:
        packed (`torch.Tensor`): int32 words ``[out_features, packed_words(in_features, bits)]``.
        scales (`torch.Tensor`): ``[out_features, in_features // group_size]``.
        zeros (`torch.Tensor`): ``[out_features, in_features // group_size]``, fractional zero points.
        bits (`int`): Bits per code.
        group_size (`int`): Input columns sharing one scale and zero.
        in_features (`int`): Number of input columns ``K``.
        dtype (`torch.dtype`, *optional*, defaults to the dtype of `scales`):
            Dtype of the result. The arithmetic itself always runs in float32.

    Returns:
        `torch.Tensor`: ``[out_features, in_features]``.
    """
    codes = unpack_codes(packed, bits, in_features).to(torch.float32)
    group = torch.arange(in_features, device=packed.device) // group_size
    weight = (codes - zeros.to(torch.float32)[:, group]) * scales.to(torch.float32)[:, group]
    return weight.to(dtype or scales.dtype)


def reference_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    in_features: int,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """``x @ dequantize(...)^T + bias``, computed in float32 and returned in ``x.dtype``.

    float32 on purpose: the reference should carry less rounding than any kernel it judges, and on
    CPU half-precision matmuls are no faster anyway.
    """
    weight = dequantize(packed, scales, zeros, bits, group_size, in_features, dtype=torch.float32)
    y = x.to(torch.float32) @ weight.T
    if bias is not None:
        y = y + bias.to(torch.float32)
    return y.to(x.dtype)
