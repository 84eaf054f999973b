"""Pure tensor math: min-max grids, RTN and GPTQ, bit-packing, the ``QuantizedWeight`` container.

Nothing here knows about ``nn.Module``, transformers or PEFT; every layer above builds on it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from .clipping import DEFAULT_CLIP_RATIOS, quantize_rtn_clipped, search_clip_params
from .gptq import HessianAccumulator, gptq_quantize
from .grid import SUPPORTED_BITS, check_bits, check_weight, dequantize, quantize_rtn
from .packing import pack_codes, packed_cols, unpack_codes
from .weight import QuantizedWeight

METHODS = ("rtn", "gptq")


def quantize_weight(
    weight: torch.Tensor,
    bits: Iterable[int],
    group_size: int,
    *,
    method: str = "rtn",
    hessian: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    layer_name: str | None = None,
    clip_ratios: Sequence[float] | None = None,
    **gptq_options,
) -> dict[int, QuantizedWeight]:
    """Quantize one weight at every bit-width in ``bits``: ``{bits: QuantizedWeight}``.

    ``method="gptq"`` needs the layer's input ``hessian`` (see :class:`HessianAccumulator`);
    ``gptq_options`` go to :func:`gptq_quantize`. ``dtype`` is the storage dtype of scales/zeros.
    ``clip_ratios`` switches on the per-group clipping search (:mod:`.clipping`) for either method; with
    ``method="rtn"`` a ``hessian``, when given, makes it minimise the output error instead of the weight error.
    """
    if method == "rtn":
        if gptq_options:
            raise TypeError(f"method='rtn' takes no GPTQ options, got {sorted(gptq_options)}.")
        if clip_ratios is None:
            raw = {int(b): quantize_rtn(weight, b, group_size, layer_name) for b in bits}
        else:
            for b in bits:
                check_bits(b, layer_name)
            check_weight(weight, group_size, layer_name)
            raw = {int(b): quantize_rtn_clipped(weight, b, group_size, clip_ratios, hessian) for b in bits}
    elif method == "gptq":
        if hessian is None:
            raise ValueError(
                f"method='gptq' needs the input Hessian of `{layer_name}`; pass `hessian=` or use method='rtn'."
            )
        raw = gptq_quantize(
            weight, hessian, bits, group_size, layer_name=layer_name, clip_ratios=clip_ratios, **gptq_options
        )
    else:
        raise ValueError(f"Unknown quantization method {method!r}: choose one of {METHODS}.")
    return {b: QuantizedWeight.from_codes(c, s, z, b, group_size, dtype) for b, (c, s, z) in raw.items()}


__all__ = [
    "DEFAULT_CLIP_RATIOS",
    "METHODS",
    "SUPPORTED_BITS",
    "HessianAccumulator",
    "QuantizedWeight",
    "check_bits",
    "check_weight",
    "dequantize",
    "gptq_quantize",
    "pack_codes",
    "packed_cols",
    "quantize_rtn",
    "quantize_rtn_clipped",
    "quantize_weight",
    "search_clip_params",
    "unpack_codes",
]
