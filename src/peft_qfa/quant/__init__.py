"""Pure tensor math: min-max grids, RTN and GPTQ, bit-packing, the ``QuantizedWeight`` container.

Nothing here knows about ``nn.Module``, transformers or PEFT; every layer above builds on it.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

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
    **gptq_options,
) -> dict[int, QuantizedWeight]:
    """Quantize one weight at every bit-width in ``bits``: ``{bits: QuantizedWeight}``.

    ``method="gptq"`` needs the layer's input ``hessian`` (see :class:`HessianAccumulator`);
    ``gptq_options`` go to :func:`gptq_quantize`. ``dtype`` is the storage dtype of scales/zeros.
    """
    if method == "rtn":
        if gptq_options:
            raise TypeError(f"method='rtn' takes no GPTQ options, got {sorted(gptq_options)}.")
        raw = {int(b): quantize_rtn(weight, b, group_size, layer_name) for b in bits}
    elif method == "gptq":
        if hessian is None:
            raise ValueError(
                f"method='gptq' needs the input Hessian of `{layer_name}`; pass `hessian=` or use method='rtn'."
            )
        raw = gptq_quantize(weight, hessian, bits, group_size, layer_name=layer_name, **gptq_options)
    else:
        raise ValueError(f"Unknown quantization method {method!r}: choose one of {METHODS}.")
    return {b: QuantizedWeight.from_codes(c, s, z, b, group_size, dtype) for b, (c, s, z) in raw.items()}


__all__ = [
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
    "quantize_weight",
    "unpack_codes",
]
