"""How a deployed model stores what is not a quantized linear: its float dtype and the embedding's bytes.

One answer for the cost model (what a subnet will cost on disk) and for materialization (what is
written), so a byte budget counts exactly the files ``save_pretrained`` produces.
"""

from __future__ import annotations

import torch

from ..quant import packed_cols

SIXTEEN_BIT = (torch.float16, torch.bfloat16)


def resolve_deploy_dtype(model_dtype: torch.dtype | str | None, setting: str | None = "auto") -> torch.dtype:
    """The float dtype of a deployed model: ``setting`` itself, or for ``"auto"`` the model's 16-bit dtype
    (``bfloat16`` for a float32 model: its range is float32's, so no activation overflows)."""
    if setting not in (None, "auto"):
        return getattr(torch, setting)
    if isinstance(model_dtype, str):
        model_dtype = getattr(torch, model_dtype, None)
    return model_dtype if model_dtype in SIXTEEN_BIT else torch.bfloat16


def packed_table_bytes(rows: int, cols: int, bits: int, group_size: int, float_bytes: int) -> int:
    """Bytes of a ``[rows, cols]`` table packed at ``bits``: int32 codes plus a scale and a zero per group."""
    return rows * packed_cols(cols, bits) * 4 + 2 * rows * (cols // group_size) * float_bytes


__all__ = ["SIXTEEN_BIT", "packed_table_bytes", "resolve_deploy_dtype"]
