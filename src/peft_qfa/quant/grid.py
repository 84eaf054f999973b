"""Group-wise asymmetric min-max quantization grid: ``w ~= (q - zero) * scale``.

Every group of ``group_size`` consecutive input columns of one output row gets its own float
``scale`` and float ``zero``. The zero point is deliberately *not* rounded to an integer: the
QA-LoRA merge later shifts it by a fractional amount (``zero -= delta / scale``), and a rounded
zero could not hold that shift exactly. With a float zero the min-max grid maps the group's
minimum to code 0 and its maximum to code ``2**bits - 1`` exactly, so the round-trip error of
every weight is at most half a step (``scale / 2``).

Shapes: weights ``[out_features, in_features]``, codes ``uint8`` of the same shape, scales and
zeros ``[out_features, in_features // group_size]``.
"""

from __future__ import annotations

import torch

SUPPORTED_BITS: tuple[int, ...] = (2, 3, 4, 8)
"""Bit-widths the grid, the packer and the serializer accept."""

MIN_SCALE = 1e-6
"""Floor on a group's step size. A constant group (max == min) would otherwise get scale 0,
which breaks dequantization and the zero-point merge (it divides by the scale). 1e-6 stays
representable in fp16 and is far below the step of any real LLM weight group."""


def _where(layer_name: str | None) -> str:
    return f" in layer `{layer_name}`" if layer_name else ""


def check_bits(bits: int, layer_name: str | None = None) -> int:
    """Validate one bit-width; returns it as an ``int``."""
    if isinstance(bits, bool) or int(bits) != bits or int(bits) not in SUPPORTED_BITS:
        raise ValueError(
            f"Unsupported bit-width {bits!r}{_where(layer_name)}: choose one of {SUPPORTED_BITS}."
        )
    return int(bits)


def check_weight(weight: torch.Tensor, group_size: int, layer_name: str | None = None) -> None:
    """Fail fast, naming the layer, on weights the grid cannot represent."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"Expected a torch.Tensor weight{_where(layer_name)}, got {type(weight).__name__}.")
    if weight.dim() != 2:
        raise ValueError(
            f"Expected a 2-D weight [out_features, in_features]{_where(layer_name)}, got shape "
            f"{tuple(weight.shape)}. Only linear layers can be quantized; exclude this module with "
            "`modules_to_not_convert`."
        )
    if not weight.is_floating_point():
        raise TypeError(f"Expected a floating-point weight{_where(layer_name)}, got {weight.dtype}.")
    if isinstance(group_size, bool) or int(group_size) != group_size or group_size <= 0:
        raise ValueError(f"group_size must be a positive integer, got {group_size!r}.")
    in_features = weight.shape[1]
    if in_features % group_size != 0:
        divisors = [g for g in (32, 64, 128, 256) if in_features % g == 0]
        raise ValueError(
            f"group_size={group_size} does not divide in_features={in_features}{_where(layer_name)}. "
            f"Pick a group size that divides it (e.g. {divisors or [in_features]}) or exclude the layer "
            "with `modules_to_not_convert`."
        )
    if not torch.isfinite(weight).all():
        bad = (~torch.isfinite(weight)).sum().item()
        raise ValueError(
            f"The weight{_where(layer_name)} holds {bad} NaN/Inf value(s); quantization needs finite "
            "weights. Check the checkpoint, or exclude the layer with `modules_to_not_convert`."
        )


def minmax_params(groups: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and float zero of the min-max grid for ``groups [..., group_size]`` (fp32 out)."""
    groups = groups.float()
    wmin = groups.amin(dim=-1)
    wmax = groups.amax(dim=-1)
    scales = ((wmax - wmin) / (2**bits - 1)).clamp(min=MIN_SCALE)
    zeros = -wmin / scales
    return scales, zeros


def round_to_grid(values: torch.Tensor, scales: torch.Tensor, zeros: torch.Tensor, bits: int) -> torch.Tensor:
    """Nearest code in ``[0, 2**bits)`` for ``values``; scales/zeros broadcast against them."""
    return torch.clamp(torch.round(values / scales + zeros), 0, 2**bits - 1)


def quantize_rtn(
    weight: torch.Tensor, bits: int, group_size: int, layer_name: str | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Round-to-nearest on the min-max grid.

    Returns ``(codes uint8 [out, in], scales fp32 [out, in/g], zeros fp32 [out, in/g])``.
    """
    bits = check_bits(bits, layer_name)
    check_weight(weight, group_size, layer_name)
    out_features, in_features = weight.shape
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    scales, zeros = minmax_params(groups, bits)
    codes = round_to_grid(groups, scales.unsqueeze(-1), zeros.unsqueeze(-1), bits)
    return codes.reshape(out_features, in_features).to(torch.uint8), scales, zeros


def dequantize(
    codes: torch.Tensor,
    scales: torch.Tensor,
    zeros: torch.Tensor,
    group_size: int,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``(codes - zeros) * scales`` per group, computed in fp32 and returned in ``dtype``."""
    out_features, in_features = codes.shape
    groups = codes.float().reshape(out_features, in_features // group_size, group_size)
    weight = (groups - zeros.float().unsqueeze(-1)) * scales.float().unsqueeze(-1)
    return weight.reshape(out_features, in_features).to(dtype or scales.dtype)
