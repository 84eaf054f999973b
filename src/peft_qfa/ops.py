"""``quantized_linear``: ``y = x @ W^T + b`` for a packed :class:`QuantizedWeight`, training-friendly.

Forward runs the ``qfa_kernels`` low-bit kernel on CUDA and dequantize-then-matmul on CPU. Backward
re-dequantizes the weight instead of keeping it from the forward pass: autograd through a plain
``F.linear(x, W)`` would hold every layer's full-precision ``W`` until backward, which is exactly
the memory a quantized supernet exists to save. The weight is frozen, so only ``x`` (and hence the
adapters of earlier layers) gets a gradient.
"""

from __future__ import annotations

import os

import torch

from .quant import QuantizedWeight


def _kernel_linear(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None) -> torch.Tensor:
    """Triton kernel on CUDA; on CPU, dequantize with the core's gather-free unpack and matmul.

    ``qfa_kernels``' own torch backend is a readable reference, several times slower than
    :func:`peft_qfa.quant.unpack_codes`; training on CPU runs this path on every step.
    """
    if x.device.type == "cuda" or os.environ.get("QFA_KERNEL_BACKEND") == "triton":
        import qfa_kernels  # it honours QFA_KERNEL_BACKEND (forced triton runs under TRITON_INTERPRET=1)

        return qfa_kernels.wna16_linear(
            x,
            qweight.packed,
            qweight.scales,
            qweight.zeros,
            bits=qweight.bits,
            group_size=qweight.group_size,
            in_features=qweight.in_features,
            bias=bias,
        )
    weight = qweight.dequantize(x.dtype)
    return torch.nn.functional.linear(x, weight, None if bias is None else bias.to(x.dtype))


class _QuantizedLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, bias, qweight):
        ctx.qweight = qweight
        return _kernel_linear(x, qweight, bias)

    @staticmethod
    def backward(ctx, grad_out):
        weight = ctx.qweight.dequantize(grad_out.dtype)
        grad_x = grad_out @ weight
        return grad_x, None, None


def quantized_linear(x: torch.Tensor, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Linear layer over a frozen quantized weight; gradients flow to ``x`` only."""
    if x.shape[-1] != qweight.in_features:
        raise ValueError(
            f"Input has {x.shape[-1]} features but the quantized weight expects {qweight.in_features}."
        )
    if torch.is_grad_enabled() and x.requires_grad:
        return _QuantizedLinearFunction.apply(x, bias, qweight)
    return _kernel_linear(x, qweight, bias)
