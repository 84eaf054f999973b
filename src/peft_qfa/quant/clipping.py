"""Per-group clipping search: a tighter min-max range per group before RTN or GPTQ rounds onto it.

The min-max grid of :mod:`peft_qfa.quant.grid` spends its ``2**bits`` levels on the whole range of
a group, so a single outlier weight widens every step of that group. At 2 and 3 bits that costs
more than clipping the outlier does. The search tries a grid of clip ratios ``r`` per group
(``[min, max] -> [r * min, r * max]``, the shrink used by AWQ's and OmniQuant's clipping), rounds the
group onto each clipped grid, and keeps the ratio whose error is smallest:

* ``hessian=None``: the weight error ``sum_j (w_j - q_j)**2``;
* ``hessian=H`` (the layer's input Hessian ``2/n X^T X``, of which each group uses its own
  ``group_size x group_size`` diagonal block ``H_g``): the output error ``e^T H_g e`` of the group,
  ``e = w - q``, i.e. how much the group's rounding changes the layer's output on the calibration
  inputs (cross-group terms are left out so that groups can be chosen one by one).

Measured on SmolLM2-135M (docs/training.md), the weight error is the wrong objective: it clips the
large weights that the inputs make important, and 2/3-bit perplexity gets worse. Use the output
error, i.e. give calibration data (RTN then collects the Hessians as GPTQ does).

Ratio ``1.0`` (no clipping) is always tried, so the chosen error is never above the min-max
grid's. The result is an ordinary ``(scales, float zeros)`` pair: codes, packing, the kernels and
the zero-point merge of the adapters are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .grid import MIN_SCALE, round_to_grid

DEFAULT_CLIP_RATIOS: tuple[float, ...] = tuple(round(1.0 - 0.025 * i, 3) for i in range(21))
"""1.0, 0.975, ..., 0.5: the search grid when clipping is switched on without a grid of its own."""


def check_clip_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Validate a grid of clip ratios (each in ``(0, 1]``); returns it sorted, with ``1.0`` added."""
    if isinstance(ratios, (str, bytes)) or not isinstance(ratios, Sequence):
        raise TypeError(f"clip ratios must be a sequence of floats in (0, 1], got {ratios!r}.")
    values = []
    for ratio in ratios:
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ValueError(f"clip ratios must lie in (0, 1], got {ratio!r} in {tuple(ratios)}.")
        values.append(float(ratio))
    return tuple(sorted(set(values) | {1.0}, reverse=True))


def _times_blocks(diff: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    # One [g, g] block for all rows is a plain matmul; per-group blocks go through einsum, which runs one
    # batched matmul over the groups (broadcasting matmul would first copy the blocks for every row).
    if blocks.dim() == 2:
        return diff @ blocks
    return torch.einsum("ogi,gij->ogj", diff, blocks)


def _clipped_params(wmin: torch.Tensor, wmax: torch.Tensor, ratio: float, bits: int):
    low, high = wmin * ratio, wmax * ratio
    scales = ((high - low) / (2**bits - 1)).clamp(min=MIN_SCALE)
    return scales, -low / scales


def hessian_blocks(hessian: torch.Tensor, group_size: int) -> torch.Tensor:
    """The ``[n_groups, group_size, group_size]`` diagonal blocks of an ``[in, in]`` Hessian."""
    n_groups = hessian.shape[0] // group_size
    blocks = hessian.reshape(n_groups, group_size, n_groups, group_size).diagonal(dim1=0, dim2=2)
    return blocks.permute(2, 0, 1)


@torch.no_grad()
def search_clip_params(
    groups: torch.Tensor,
    bits: int,
    ratios: Sequence[float] = DEFAULT_CLIP_RATIOS,
    hessian: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and float zero per group of ``groups [..., group_size]`` from the best clip ratio.

    ``hessian`` (optional) holds each group's Hessian block, ``[..., group_size, group_size]``
    broadcastable against ``groups`` (``[n_groups, g, g]`` for ``groups [out, n_groups, g]``, or
    ``[g, g]`` for one group of columns ``[out, g]``); without it the weight error is minimised.
    Returns fp32 ``(scales, zeros)`` of shape ``groups.shape[:-1]``, ties resolved towards less clipping.
    """
    groups = groups.float()
    blocks = None if hessian is None else hessian.float().to(groups.device)
    wmin = groups.amin(dim=-1)
    wmax = groups.amax(dim=-1)
    best_scales = best_zeros = best_error = None
    for ratio in check_clip_ratios(ratios):
        scales, zeros = _clipped_params(wmin, wmax, ratio, bits)
        codes = round_to_grid(groups, scales.unsqueeze(-1), zeros.unsqueeze(-1), bits)
        diff = groups - (codes - zeros.unsqueeze(-1)) * scales.unsqueeze(-1)
        if blocks is None:
            error = diff.square().sum(dim=-1)
        else:
            error = (_times_blocks(diff, blocks) * diff).sum(dim=-1)
        if best_error is None:
            best_scales, best_zeros, best_error = scales, zeros, error
            continue
        better = error < best_error
        best_scales = torch.where(better, scales, best_scales)
        best_zeros = torch.where(better, zeros, best_zeros)
        best_error = torch.where(better, error, best_error)
    return best_scales, best_zeros


def quantize_rtn_clipped(
    weight: torch.Tensor,
    bits: int,
    group_size: int,
    ratios: Sequence[float] = DEFAULT_CLIP_RATIOS,
    hessian: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """RTN on the clip-searched grid: ``(codes uint8 [out, in], scales fp32, zeros fp32 [out, in/g])``.

    ``hessian`` is the layer's ``[in, in]`` input Hessian (output error), or ``None`` (weight error).
    Validation of ``weight``/``bits`` is the caller's (:func:`peft_qfa.quant.quantize_weight`).
    """
    out_features, in_features = weight.shape
    groups = weight.detach().float().reshape(out_features, in_features // group_size, group_size)
    blocks = None if hessian is None else hessian_blocks(hessian.float(), group_size)
    scales, zeros = search_clip_params(groups, bits, ratios, blocks)
    codes = round_to_grid(groups, scales.unsqueeze(-1), zeros.unsqueeze(-1), bits)
    return codes.reshape(out_features, in_features).to(torch.uint8), scales, zeros
