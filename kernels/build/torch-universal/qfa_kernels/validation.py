"""Argument checks shared by every backend, run before anything is launched.

A bad shape reaching a Triton kernel does not fail: it reads or writes the wrong memory. So every
inconsistency is turned into a ``TypeError`` (wrong kind of value) or ``ValueError`` (wrong
value) that names the argument and says how to fix it.
"""

from __future__ import annotations

import torch

from .layout import SUPPORTED_BITS, packed_words

FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float16, torch.bfloat16, torch.float32)
"""Dtypes accepted for activations, scales, zeros and bias (float32 mainly for CPU tests)."""

_OP = "wna16_linear"


def _check_tensor(name: str, value) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{_OP}: `{name}` must be a torch.Tensor, got {type(value).__name__}.")


def _check_positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{_OP}: `{name}` must be a positive integer, got {value!r}.")
    return value


def _check_float(name: str, tensor: torch.Tensor) -> None:
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{_OP}: `{name}` has dtype {tensor.dtype}; use one of float16, bfloat16 or float32 "
            f"(for example `{name}.to(torch.float16)`)."
        )


def check_bits(bits) -> int:
    """Validate one bit-width and return it as an ``int``."""
    if isinstance(bits, bool) or not isinstance(bits, int) or bits not in SUPPORTED_BITS:
        raise ValueError(f"{_OP}: `bits`={bits!r} is not supported; choose one of {SUPPORTED_BITS}.")
    return bits


def check_linear_args(
    x: torch.Tensor,
    packed: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    *,
    bits: int,
    group_size: int,
    in_features: int,
    bias: torch.Tensor | None = None,
    out: torch.Tensor | None = None,
) -> int:
    """Check that the arguments of :func:`qfa_kernels.wna16_linear` describe one consistent layer.

    Returns:
        `int`: ``out_features``, read from the first dimension of ``packed``.
    """
    for name, value in (("x", x), ("packed", packed), ("scales", scales), ("zeros", zeros)):
        _check_tensor(name, value)
    check_bits(bits)
    _check_positive_int("group_size", group_size)
    _check_positive_int("in_features", in_features)
    if in_features % group_size:
        raise ValueError(
            f"{_OP}: `group_size`={group_size} does not divide `in_features`={in_features}; pass the "
            "group size the weight was quantized with."
        )

    _check_float("x", x)
    if x.dim() == 0 or x.shape[-1] != in_features:
        raise ValueError(
            f"{_OP}: `x` has shape {tuple(x.shape)} but the weight has in_features={in_features}; the last "
            "dimension of `x` must equal `in_features`."
        )

    if packed.dtype != torch.int32:
        raise TypeError(
            f"{_OP}: `packed` must hold int32 words (the raw bit pattern), got {packed.dtype}; pack the "
            "codes with the project's packer instead of casting."
        )
    words = packed_words(in_features, bits)
    if packed.dim() != 2 or packed.shape[1] != words:
        raise ValueError(
            f"{_OP}: `packed` has shape {tuple(packed.shape)} but {in_features} {bits}-bit codes per row "
            f"need [out_features, {words}] int32 words; check `bits` and `in_features`."
        )
    out_features = packed.shape[0]

    grid_shape = (out_features, in_features // group_size)
    for name, tensor in (("scales", scales), ("zeros", zeros)):
        _check_float(name, tensor)
        if tuple(tensor.shape) != grid_shape:
            raise ValueError(
                f"{_OP}: `{name}` has shape {tuple(tensor.shape)}, expected {grid_shape} "
                f"([out_features, in_features // group_size] with group_size={group_size}); check "
                "`group_size`."
            )

    if bias is not None:
        _check_tensor("bias", bias)
        _check_float("bias", bias)
        if tuple(bias.shape) != (out_features,):
            raise ValueError(
                f"{_OP}: `bias` has shape {tuple(bias.shape)}, expected ({out_features},) (one value per "
                "output feature)."
            )

    if out is not None:
        _check_tensor("out", out)
        if out.dtype != x.dtype:
            raise TypeError(f"{_OP}: `out` has dtype {out.dtype}; it must match `x` ({x.dtype}).")
        expected = (*x.shape[:-1], out_features)
        if tuple(out.shape) != expected:
            raise ValueError(f"{_OP}: `out` has shape {tuple(out.shape)}, expected {expected}.")
        if not out.is_contiguous():
            raise ValueError(f"{_OP}: `out` must be contiguous; pass a fresh `torch.empty(...)` buffer.")

    named = {"packed": packed, "scales": scales, "zeros": zeros, "bias": bias, "out": out}
    for name, tensor in named.items():
        if tensor is not None and tensor.device != x.device:
            raise ValueError(
                f"{_OP}: `{name}` is on {tensor.device} but `x` is on {x.device}; move all inputs to one "
                "device."
            )
    return out_features
