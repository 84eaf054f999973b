"""``QFAPackedLinear``: the deployed layer, one packed integer weight at one bit-width.

A materialized subnet keeps, per linear, only the bit-width its group was given, with the
adapter already folded into the zero points. The layer is a :class:`QFALinear` with a single
candidate bit-width: the same parameter names (``b{bits}_packed`` / ``b{bits}_scales`` /
``b{bits}_zeros``, ``bias``), the same forward through the backend dispatcher
(:func:`peft_qfa.ops.layer_forward`: the ``qfa_kernels`` kernel on GPU, the torch reference on CPU;
as a packed layer it may also take torch's CPU int4 kernel for bfloat16 inputs, see
:mod:`peft_qfa.quant.cpu_int4`) and the same save/load path through
the ``"qfa"`` quantizer, so the subnet API reads its fixed bits like any supernet layer's.
"""

from __future__ import annotations

import torch

from ..quant import QuantizedWeight
from .layer import QFALinear


class QFAPackedLinear(QFALinear):
    """A linear layer holding one frozen packed weight; ``candidate_bits == (bits,)``.

    Args:
        bits (`int`): the layer's one bit-width (a single ``int``, not a collection).
        in_features, out_features, group_size, bias, dtype, device: as in :class:`QFALinear`.
    """

    supports_cpu_int4 = True
    """A single packed bit-width: the dispatcher may repack it once for torch's CPU int4 kernel."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bits: int,
        group_size: int,
        bias: bool = False,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        if not isinstance(bits, int) or isinstance(bits, bool):
            raise TypeError(
                f"QFAPackedLinear holds one bit-width; got bits={bits!r}. Use QFALinear for several."
            )
        super().__init__(
            in_features, out_features, (bits,), group_size, bias=bias, dtype=dtype, device=device
        )

    @classmethod
    def from_quantized(cls, qweight: QuantizedWeight, bias: torch.Tensor | None = None) -> QFAPackedLinear:
        """A packed layer holding copies of ``qweight`` and ``bias``, built without placeholder tensors.

        Copies, so that the deployed model shares no storage with the supernet it came from (a later
        in-place change to one must not reach the other).
        """
        layer = cls(
            qweight.in_features,
            qweight.out_features,
            qweight.bits,
            qweight.group_size,
            bias=bias is not None,
            dtype=qweight.scales.dtype,
            device="meta",
        )
        owned = QuantizedWeight(
            qweight.packed.detach().clone(),
            qweight.scales.detach().clone(),
            qweight.zeros.detach().clone(),
            qweight.bits,
            qweight.group_size,
            qweight.shape,
        )
        layer.load_quantized({qweight.bits: owned}, bias=None if bias is None else bias.detach().clone())
        return layer

    @property
    def bits(self) -> int:
        return self.candidate_bits[0]

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bits={self.bits}, "
            f"group_size={self.group_size}, bias={self.bias is not None}"
        )


__all__ = ["QFAPackedLinear"]
