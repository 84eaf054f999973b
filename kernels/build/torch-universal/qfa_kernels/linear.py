"""``wna16_linear``: the one public entry point, ``y = x @ dequantize(W)^T + bias``."""

from __future__ import annotations

import torch

from .backend import selected_backend
from .reference import reference_linear
from .validation import check_linear_args


def wna16_linear(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    in_features: int,
    bias: torch.Tensor | None = None,
    backend: str | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Linear layer over a low-bit weight packed in the :mod:`qfa_kernels.layout` format.

    Args:
        x (`torch.Tensor`):
            Activations ``[..., in_features]`` in float16, bfloat16 or float32; any strides.
        packed (`torch.Tensor`):
            int32 words ``[out_features, ceil(in_features / 32) * bits]``.
        scales (`torch.Tensor`):
            ``[out_features, in_features // group_size]``.
        zeros (`torch.Tensor`):
            ``[out_features, in_features // group_size]``, fractional zero points.
        bits (`int`):
            Bits per code, one of 2, 3, 4 or 8.
        group_size (`int`):
            Input columns sharing one scale and zero (the Triton kernels need a multiple of 32).
        in_features (`int`):
            Number of input features ``K``.
        bias (`torch.Tensor`, *optional*):
            ``[out_features]``, added in float32 before the cast to ``x.dtype``.
        backend (`str`, *optional*):
            ``"auto"``, ``"triton"`` or ``"torch"``; defaults to ``$QFA_KERNEL_BACKEND`` or ``"auto"``.
            See :func:`qfa_kernels.selected_backend`.
        out (`torch.Tensor`, *optional*):
            Contiguous ``[..., out_features]`` buffer of ``x.dtype`` to write into (tests pass one
            filled with NaN so that an element a kernel forgets to write shows up).

    Returns:
        `torch.Tensor`: ``[..., out_features]`` in ``x.dtype`` (``out`` itself when given).

    The Triton path is forward-only (it records no autograd graph); ``peft_qfa.ops.quantized_linear``
    wraps this function in an ``autograd.Function`` whose backward re-dequantizes the weight.

    Example:

    ```python
    >>> import torch, qfa_kernels
    >>> packed = torch.randint(-2**31, 2**31, (8, 4 * 2), dtype=torch.int32)  # any bits are valid codes
    >>> scales, zeros = torch.full((8, 1), 0.01), torch.full((8, 1), 7.5)
    >>> y = qfa_kernels.wna16_linear(torch.randn(3, 64), packed, scales, zeros, bits=4, group_size=64, in_features=64)
    >>> y.shape
    torch.Size([3, 8])

    ```
    """
    out_features = check_linear_args(
        x,
        packed,
        scales,
        zeros,
        bits=bits,
        group_size=group_size,
        in_features=in_features,
        bias=bias,
        out=out,
    )
    if selected_backend(x, group_size=group_size, backend=backend) == "torch":
        y = reference_linear(
            x, packed, scales, zeros, bits=bits, group_size=group_size, in_features=in_features, bias=bias
        )
        return y if out is None else out.copy_(y)

    from .triton_launch import triton_wna16_linear  # imports triton; only reached when it is usable

    x2d = x.reshape(-1, in_features)  # a view when the leading dims allow it; strides go to the kernel
    if out is None:
        out = torch.empty(*x.shape[:-1], out_features, dtype=x.dtype, device=x.device)
    out2d = out.view(-1, out_features)
    triton_wna16_linear(
        x2d, packed, scales, zeros, bias, out2d, bits=bits, group_size=group_size, validate=False
    )
    return out
