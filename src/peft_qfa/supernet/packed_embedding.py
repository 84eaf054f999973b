"""``QFAPackedEmbedding`` and ``QFAPackedHead``: the token embedding and the output head, packed.

For a small model with a large vocabulary the embedding is most of the deployed bytes (SmolLM2-135M:
28M of its 135M parameters), so a deployed model may keep it group-wise quantized (8 or 4 bits)
on the same grid and in the same packed layout as the linear layers (:mod:`peft_qfa.quant`): an
embedding table ``[vocab, hidden]`` is a linear weight ``[out=vocab, in=hidden]``. The lookup
dequantizes only the gathered rows; the head computes its logits from the same packed codes
(``ops.quantized_linear``), so a tied head costs no bytes of its own.

Neither is a :class:`~peft_qfa.supernet.layer.BitSelectableLayer`: their precision is a deployment
setting (``QFAQuantizationConfig(embedding_bits=...)``), not a group of the search space.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops import quantized_linear
from ..quant import QuantizedWeight, packed_cols, quantize_weight

EMBEDDING_BITS = (4, 8)
"""Precisions a deployed embedding may take besides the model's float dtype."""
EMBEDDING_SEARCH = "search"
"""``embedding_bits="search"``: a byte budget chooses the embedding's precision (float, 8 or 4 bits) too."""


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor, requires_grad=False)


class QFAPackedEmbedding(nn.Module):
    """A frozen embedding table held as packed codes + per-group scales and zero points.

    Args:
        num_embeddings (`int`), embedding_dim (`int`): the table's shape ``[vocab, hidden]``.
        bits (`int`): 4 or 8; group_size (`int`): hidden columns per group (must divide ``embedding_dim``).
        dtype (`torch.dtype`): storage and output dtype of scales, zeros and the looked-up rows.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        bits: int,
        group_size: int,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        if bits not in EMBEDDING_BITS:
            raise ValueError(f"QFAPackedEmbedding: `bits={bits!r}` is not supported; choose one of {EMBEDDING_BITS}.")
        if embedding_dim % group_size:
            raise ValueError(
                f"QFAPackedEmbedding: group_size={group_size} does not divide the embedding size {embedding_dim}; "
                "pick a `group_size` that divides it."
            )
        self.num_embeddings, self.embedding_dim = int(num_embeddings), int(embedding_dim)
        self.bits, self.group_size = int(bits), int(group_size)
        groups = embedding_dim // group_size
        self.packed = _frozen(torch.zeros(num_embeddings, packed_cols(embedding_dim, bits), dtype=torch.int32, device=device))
        self.scales = _frozen(torch.ones(num_embeddings, groups, dtype=dtype, device=device))
        self.zeros = _frozen(torch.zeros(num_embeddings, groups, dtype=dtype, device=device))

    @classmethod
    @torch.no_grad()
    def from_float(cls, weight: torch.Tensor, bits: int, group_size: int) -> QFAPackedEmbedding:
        """Round-to-nearest quantization of a float table (no data needed: every row is looked up as is)."""
        qweight = quantize_weight(weight.detach(), [bits], group_size, method="rtn", dtype=weight.dtype)[bits]
        module = cls(*weight.shape, bits, group_size, dtype=weight.dtype, device="meta")
        module.packed = _frozen(qweight.packed)
        module.scales = _frozen(qweight.scales)
        module.zeros = _frozen(qweight.zeros)
        return module

    @property
    def weight_dtype(self) -> torch.dtype:
        return self.scales.dtype

    def quantized(self) -> QuantizedWeight:
        """The whole table as a linear weight ``[vocab, hidden]`` (what the head multiplies with)."""
        return QuantizedWeight(
            self.packed, self.scales, self.zeros, self.bits, self.group_size, (self.num_embeddings, self.embedding_dim)
        )

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        flat = input_ids.reshape(-1)
        rows = QuantizedWeight(
            self.packed[flat], self.scales[flat], self.zeros[flat], self.bits, self.group_size,
            (flat.numel(), self.embedding_dim),
        )
        return rows.dequantize(self.weight_dtype).reshape(*input_ids.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, bits={self.bits}, group_size={self.group_size}"


class QFAPackedHead(nn.Module):
    """The output head over a packed table: ``logits = x @ W.T`` with ``W`` dequantized by the matmul path.

    ``tied_to`` (the model's :class:`QFAPackedEmbedding`) is referenced, not registered, so the
    state dict holds the shared codes once; an untied head owns its table as ``self.table``.
    """

    def __init__(self, tied_to: QFAPackedEmbedding | None = None, table: QFAPackedEmbedding | None = None):
        super().__init__()
        if (tied_to is None) == (table is None):
            raise ValueError("QFAPackedHead: pass exactly one of `tied_to` (a tied head) and `table` (its own).")
        self.table = table
        self._tied = (tied_to,) if tied_to is not None else ()  # a tuple keeps it out of the module tree

    @property
    def tied(self) -> bool:
        return bool(self._tied)

    @property
    def source(self) -> QFAPackedEmbedding:
        return self._tied[0] if self._tied else self.table

    @property
    def in_features(self) -> int:
        return self.source.embedding_dim

    @property
    def out_features(self) -> int:
        return self.source.num_embeddings

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return quantized_linear(hidden, self.source.quantized())

    def extra_repr(self) -> str:
        return "tied to the input embeddings" if self.tied else ""


__all__ = ["EMBEDDING_BITS", "EMBEDDING_SEARCH", "QFAPackedEmbedding", "QFAPackedHead"]
