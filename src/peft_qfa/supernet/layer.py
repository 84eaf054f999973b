"""``QFALinear``: the supernet layer, frozen quantized copies of one weight at several bit-widths.

The layer never holds a full-precision weight: per candidate bit-width it keeps the packed codes,
scales and zero points of a :class:`~peft_qfa.quant.QuantizedWeight` as frozen parameters named
``b{bits}_packed`` / ``b{bits}_scales`` / ``b{bits}_zeros`` (so transformers' loader and
``save_pretrained`` see plain tensors), and ``active_bits`` picks the copy the forward pass uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..ops import layer_forward
from ..quant import QuantizedWeight, check_bits, packed_cols


class BitSelectableLayer(nn.Module):
    """Marker base for layers whose bit-width the subnet API reads and sets.

    Subclasses expose ``in_features``, ``out_features``, ``group_size``, ``candidate_bits``
    (sorted tuple) and a settable ``active_bits``; :mod:`peft_qfa.supernet.subnet` walks a model
    for these.
    """

    candidate_bits: tuple[int, ...]
    group_size: int
    in_features: int
    out_features: int

    @property
    def active_bits(self) -> int:
        return self._active_bits

    @active_bits.setter
    def active_bits(self, bits: int) -> None:
        if bits not in self.candidate_bits:
            raise ValueError(
                f"{type(self).__name__} holds bit-widths {self.candidate_bits}; cannot activate {bits}."
            )
        self._active_bits = int(bits)

    def quantized(self, bits: int | None = None) -> QuantizedWeight:
        raise NotImplementedError


def _frozen(tensor: torch.Tensor) -> nn.Parameter:
    return nn.Parameter(tensor, requires_grad=False)


class QFALinear(BitSelectableLayer):
    """A linear layer with one frozen quantized weight per candidate bit-width.

    Args:
        in_features (`int`), out_features (`int`): the linear layer's shape.
        bits (`Iterable[int]`): candidate bit-widths, e.g. ``(2, 3, 4)``.
        group_size (`int`): input columns per quantization group; must divide ``in_features``.
        bias (`bool`): whether the layer has a (frozen, full-precision) bias.
        dtype (`torch.dtype`): storage dtype of scales, zeros and bias.
        device: where to allocate (``"meta"`` while transformers builds the skeleton).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bits: Iterable[int],
        group_size: int,
        bias: bool = False,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ):
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.candidate_bits = tuple(sorted({check_bits(b) for b in bits}))
        if in_features % group_size:
            raise ValueError(f"group_size={group_size} does not divide in_features={in_features}.")
        self.group_size = int(group_size)
        n_groups = in_features // group_size
        for b in self.candidate_bits:
            cols = packed_cols(in_features, b)
            self.register_parameter(
                f"b{b}_packed", _frozen(torch.zeros(out_features, cols, dtype=torch.int32, device=device))
            )
            self.register_parameter(
                f"b{b}_scales", _frozen(torch.ones(out_features, n_groups, dtype=dtype, device=device))
            )
            self.register_parameter(
                f"b{b}_zeros", _frozen(torch.zeros(out_features, n_groups, dtype=dtype, device=device))
            )
        self.bias = _frozen(torch.zeros(out_features, dtype=dtype, device=device)) if bias else None
        self._active_bits = max(self.candidate_bits)

    def quantized(self, bits: int | None = None) -> QuantizedWeight:
        """A view of the stored copy at ``bits`` (default: the active one)."""
        b = self._active_bits if bits is None else bits
        if b not in self.candidate_bits:
            raise ValueError(f"This QFALinear holds bit-widths {self.candidate_bits}, not {b}.")
        return QuantizedWeight(
            packed=getattr(self, f"b{b}_packed"),
            scales=getattr(self, f"b{b}_scales"),
            zeros=getattr(self, f"b{b}_zeros"),
            bits=b,
            group_size=self.group_size,
            shape=(self.out_features, self.in_features),
        )

    @torch.no_grad()
    def load_quantized(self, weights: Mapping[int, QuantizedWeight], bias: torch.Tensor | None = None) -> None:
        """Install quantized copies (one per candidate bit-width), replacing meta or placeholder tensors."""
        if set(weights) != set(self.candidate_bits):
            raise ValueError(f"Expected quantized weights for bits {self.candidate_bits}, got {sorted(weights)}.")
        for b, qw in weights.items():
            if qw.shape != (self.out_features, self.in_features) or qw.group_size != self.group_size:
                raise ValueError(
                    f"Quantized weight {qw.describe()} does not fit QFALinear "
                    f"[{self.out_features}, {self.in_features}] g={self.group_size}."
                )
            scales_dtype = getattr(self, f"b{b}_scales").dtype
            setattr(self, f"b{b}_packed", _frozen(qw.packed))
            setattr(self, f"b{b}_scales", _frozen(qw.scales.to(scales_dtype)))
            setattr(self, f"b{b}_zeros", _frozen(qw.zeros.to(scales_dtype)))
        if bias is not None:
            if self.bias is None:
                raise ValueError("This QFALinear was built without a bias.")
            self.bias = _frozen(bias.detach().to(self.bias.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return layer_forward(self, x)  # the backend dispatcher (peft_qfa.ops) picks the matmul

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bits={self.candidate_bits}, group_size={self.group_size}, active_bits={self._active_bits}, "
            f"bias={self.bias is not None}"
        )


_WRAPPER_PREFIXES = ("base_model.model.",)


def canonical_layer_name(module_name: str) -> str:
    """The layer's name in the bare transformers model, whatever wraps it.

    PEFT adds ``base_model.model.`` in front and ``.base_layer`` behind the wrapped module; the
    subnet API speaks of layers by the names they have in the unwrapped model.
    """
    for prefix in _WRAPPER_PREFIXES:
        if module_name.startswith(prefix):
            module_name = module_name[len(prefix) :]
    return module_name.replace(".base_layer", "")


def find_bit_layers(model: nn.Module) -> dict[str, BitSelectableLayer]:
    """``{canonical name: layer}`` for every bit-selectable layer of ``model``, in module order."""
    return {
        canonical_layer_name(name): module
        for name, module in model.named_modules()
        if isinstance(module, BitSelectableLayer)
    }
