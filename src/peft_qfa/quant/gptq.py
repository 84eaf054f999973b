"""GPTQ for one linear layer, every requested bit-width from one input Hessian.

GPTQ (Frantar et al., 2022) quantizes the columns of ``W [out, in]`` one at a time and pushes
each column's rounding error onto the not-yet-quantized columns through the inverse Hessian
``H = 2/n * X^T X`` of the layer's inputs, which minimises the layer's *output* error instead of
the weight error. The supernet needs 2-, 3- and 4-bit copies of every layer: the Hessian, its
dampening and its Cholesky factor do not depend on the bit-width, so they are computed once and
each bit-width then runs the column loop on its own working copy of ``W``. Peak memory is one
``[in, in]`` factor plus one ``[out, in]`` working copy, whatever the number of bit-widths.

Choices (QA-LoRA's setting unless said otherwise):

* ``damp_percent=0.01``: ``0.01 * mean(diag(H))`` is added to the diagonal so that the Cholesky
  factorisation exists for rank-deficient Hessians (few calibration tokens, dead inputs).
* ``block_size=128``: columns are processed in blocks and the error is pushed to later blocks in
  one matmul ("lazy batch updates"); it changes speed, not the result. It is rounded up to a
  multiple of ``group_size`` so that each group's min-max grid is fitted on columns that already
  carry the error of earlier columns of the same block.
* ``act_order=False``: columns in their natural order. With ``act_order=True`` columns are visited
  by decreasing Hessian diagonal and each group's grid is fitted on the original weights before
  the loop ("static groups"), so groups stay contiguous in the original order and the packed
  layout is unchanged.
* Grids are the asymmetric min-max grids of :mod:`peft_qfa.quant.grid` with float zero points.
* Inputs that never fire (``H[i, i] == 0``) get ``H[i, i] = 1`` and their weights are zeroed
  before quantization, as in the reference implementation: they cannot affect the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import partial

import torch

from .clipping import check_clip_ratios, hessian_blocks, search_clip_params
from .grid import check_bits, check_weight, minmax_params, round_to_grid


class HessianAccumulator:
    """Running ``H = 2/n * sum_i x_i x_i^T`` over the rows of a layer's inputs.

    Feed it every calibration batch (any leading shape, last dim ``in_features``), then call
    :meth:`hessian`. Sums are kept in fp32; the scaling by the token count happens at the end.
    """

    def __init__(self, in_features: int, layer_name: str | None = None, device: torch.device | str = "cpu"):
        self.in_features = in_features
        self.layer_name = layer_name
        self.n_tokens = 0
        self._sum = torch.zeros(in_features, in_features, dtype=torch.float32, device=device)

    @torch.no_grad()
    def add(self, inputs: torch.Tensor) -> None:
        x = inputs.detach().reshape(-1, inputs.shape[-1]).to(self._sum.device, torch.float32)
        if x.shape[1] != self.in_features:
            raise ValueError(
                f"Hessian of `{self.layer_name}` expects inputs with {self.in_features} features, "
                f"got {x.shape[1]}."
            )
        self._sum.addmm_(x.T, x)
        self.n_tokens += x.shape[0]

    def hessian(self) -> torch.Tensor:
        if self.n_tokens == 0:
            raise ValueError(
                f"No calibration tokens reached layer `{self.layer_name}`: the calibration set is empty "
                "or never runs through this layer. Pass non-empty calibration data, or use method='rtn'."
            )
        return self._sum * (2.0 / self.n_tokens)


def _inverse_hessian_factor(hessian: torch.Tensor, damp_percent: float, layer_name: str | None) -> torch.Tensor:
    """Upper Cholesky factor of ``(H + damp * I)^-1``, the only Hessian quantity GPTQ needs."""
    h = hessian.clone()
    diag = torch.arange(h.shape[0], device=h.device)
    h[diag, diag] += damp_percent * torch.mean(torch.diag(h))
    try:
        factor = torch.linalg.cholesky(h)
        h_inv = torch.cholesky_inverse(factor)
        return torch.linalg.cholesky(h_inv, upper=True)
    except torch.linalg.LinAlgError as err:
        raise ValueError(
            f"The damped Hessian of `{layer_name}` is not positive definite; increase `damp_percent` "
            f"(now {damp_percent}) or add calibration tokens."
        ) from err


def _gptq_one_bitwidth(
    weight: torch.Tensor,
    h_inv: torch.Tensor,
    bits: int,
    group_size: int,
    block_size: int,
    order: torch.Tensor | None,
    static_params: tuple[torch.Tensor, torch.Tensor] | None,
    fit_params: Callable[[torch.Tensor, int, int], tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The column loop for one bit-width; ``weight`` is a working copy (permuted if ``order``).

    ``fit_params(columns, bits, first_column)`` fits one group's grid on its current columns.
    """
    out_features, in_features = weight.shape
    n_groups = in_features // group_size
    codes = torch.zeros(out_features, in_features, dtype=torch.uint8, device=weight.device)
    if static_params is not None:
        scales, zeros = static_params
    else:
        scales = torch.empty(out_features, n_groups, dtype=torch.float32, device=weight.device)
        zeros = torch.empty_like(scales)
    for start in range(0, in_features, block_size):
        stop = min(start + block_size, in_features)
        block = weight[:, start:stop].clone()
        errors = torch.zeros_like(block)
        h_block = h_inv[start:stop, start:stop]
        for i in range(stop - start):
            col = start + i
            orig_col = int(order[col]) if order is not None else col
            group = orig_col // group_size
            if static_params is None and col % group_size == 0:
                scales[:, group], zeros[:, group] = fit_params(block[:, i : i + group_size], bits, col)
            w = block[:, i]
            q = round_to_grid(w, scales[:, group], zeros[:, group], bits)
            codes[:, orig_col] = q.to(torch.uint8)
            dequant = (q - zeros[:, group]) * scales[:, group]
            err = (w - dequant) / h_block[i, i]
            block[:, i:] -= err.unsqueeze(1) * h_block[i, i:].unsqueeze(0)
            errors[:, i] = err
        weight[:, stop:] -= errors @ h_inv[start:stop, stop:]
    return codes, scales, zeros


def _minmax_fit(columns: torch.Tensor, bits: int, _first: int) -> tuple[torch.Tensor, torch.Tensor]:
    return minmax_params(columns, bits)


def _clipped_fit(
    ratios: tuple[float, ...], hessian: torch.Tensor, columns: torch.Tensor, bits: int, first: int
) -> tuple[torch.Tensor, torch.Tensor]:
    last = first + columns.shape[-1]
    return search_clip_params(columns, bits, ratios, hessian[first:last, first:last])


@torch.no_grad()
def gptq_quantize(
    weight: torch.Tensor,
    hessian: torch.Tensor,
    bits: Iterable[int],
    group_size: int,
    *,
    damp_percent: float = 0.01,
    block_size: int = 128,
    act_order: bool = False,
    layer_name: str | None = None,
    clip_ratios: Sequence[float] | None = None,
) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """GPTQ-quantize ``weight [out, in]`` at every bit-width in ``bits`` from one ``hessian [in, in]``.

    ``clip_ratios`` switches on the per-group clipping search (:mod:`peft_qfa.quant.clipping`): each
    group's grid is the clip ratio with the least error on the group's columns
    as GPTQ reaches them (output error through the group's block of ``H``), instead of their min-max grid.

    Returns ``{bits: (codes uint8 [out, in], scales fp32 [out, in/g], zeros fp32 [out, in/g])}``
    with codes in the original column order.
    """
    bit_list = sorted({check_bits(b, layer_name) for b in bits})
    if not bit_list:
        raise ValueError(f"No bit-widths requested for `{layer_name}`.")
    check_weight(weight, group_size, layer_name)
    in_features = weight.shape[1]
    if hessian.shape != (in_features, in_features):
        raise ValueError(
            f"Hessian of `{layer_name}` has shape {tuple(hessian.shape)}, expected ({in_features}, {in_features})."
        )
    if not torch.isfinite(hessian).all():
        raise ValueError(f"The Hessian of `{layer_name}` holds NaN/Inf: check the calibration activations.")
    if damp_percent <= 0:
        raise ValueError(f"damp_percent must be > 0, got {damp_percent}.")
    if block_size <= 0:
        raise ValueError(f"block_size must be > 0, got {block_size}.")

    base = weight.detach().float().clone()
    hessian = hessian.detach().float().to(base.device).clone()
    dead = torch.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    base[:, dead] = 0.0

    order = None
    original_h = hessian
    if act_order:
        order = torch.argsort(torch.diag(hessian), descending=True)
        hessian = hessian[order][:, order]
    h_inv = _inverse_hessian_factor(hessian, damp_percent, layer_name)
    block_size = -(-block_size // group_size) * group_size
    fit_params = _minmax_fit
    if clip_ratios is not None:
        # ``hessian`` is permuted with ``order`` like the working copy, so the group starting at loop
        # column ``col`` owns the block ``hessian[col:col+g, col:col+g]``.
        fit_params = partial(_clipped_fit, check_clip_ratios(clip_ratios), hessian)

    results = {}
    for b in bit_list:
        static_params = None
        if act_order:
            groups = base.reshape(base.shape[0], -1, group_size)
            static_params = (
                minmax_params(groups, b)
                if clip_ratios is None
                else search_clip_params(groups, b, check_clip_ratios(clip_ratios), hessian_blocks(original_h, group_size))
            )
        working = base[:, order] if order is not None else base.clone()
        results[b] = _gptq_one_bitwidth(
            working, h_inv, b, group_size, block_size, order, static_params, fit_params
        )
        del working
    return results
