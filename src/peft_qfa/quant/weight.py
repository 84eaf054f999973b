"""``QuantizedWeight``: one linear weight at one bit-width, packed, with its grid.

The container is the unit every higher layer passes around: the supernet keeps one per
bit-width per layer, the tuner's merge returns one with shifted zero points, the packed
deployment layer holds one, and the serializer writes one as four safetensors tensors:

``{prefix}packed``  int32 ``[out, packed_cols(in, bits)]``  codes in the :mod:`.packing` layout
``{prefix}scales``  float ``[out, in // group_size]``
``{prefix}zeros``   float ``[out, in // group_size]``       fractional zero points
``{prefix}meta``    int64 ``[4]``: ``(out_features, in_features, bits, group_size)``

so a file can be read back without any side information.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grid import check_bits, dequantize
from .packing import pack_codes, packed_cols, unpack_codes

STATE_SUFFIXES = ("packed", "scales", "zeros", "meta")


@dataclass(frozen=True)
class QuantizedWeight:
    """Packed integer codes plus per-group float scales and zero points of a ``[out, in]`` weight."""

    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor
    bits: int
    group_size: int
    shape: tuple[int, int]

    def __post_init__(self):
        check_bits(self.bits)
        out_features, in_features = self.shape
        if in_features % self.group_size:
            raise ValueError(f"group_size={self.group_size} does not divide in_features={in_features}.")
        expected = {
            "packed": (out_features, packed_cols(in_features, self.bits)),
            "scales": (out_features, in_features // self.group_size),
            "zeros": (out_features, in_features // self.group_size),
        }
        for name, shape in expected.items():
            got = tuple(getattr(self, name).shape)
            if got != shape:
                raise ValueError(f"QuantizedWeight.{name} has shape {got}, expected {shape} for {self.describe()}.")
        if self.packed.dtype != torch.int32:
            raise TypeError(f"QuantizedWeight.packed must be int32, got {self.packed.dtype}.")

    @classmethod
    def from_codes(
        cls,
        codes: torch.Tensor,
        scales: torch.Tensor,
        zeros: torch.Tensor,
        bits: int,
        group_size: int,
        dtype: torch.dtype = torch.float32,
    ) -> QuantizedWeight:
        """Pack ``codes [out, in]`` and store scales/zeros in ``dtype``."""
        return cls(
            packed=pack_codes(codes, bits),
            scales=scales.to(dtype),
            zeros=zeros.to(dtype),
            bits=int(bits),
            group_size=int(group_size),
            shape=(int(codes.shape[0]), int(codes.shape[1])),
        )

    @property
    def out_features(self) -> int:
        return self.shape[0]

    @property
    def in_features(self) -> int:
        return self.shape[1]

    def describe(self) -> str:
        return f"{self.bits}-bit [{self.shape[0]}, {self.shape[1]}] g={self.group_size}"

    def codes(self) -> torch.Tensor:
        """Unpacked uint8 codes ``[out, in]``."""
        return unpack_codes(self.packed, self.bits, self.in_features)

    def dequantize(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The float weight ``(codes - zeros) * scales``."""
        return dequantize(self.codes(), self.scales, self.zeros, self.group_size, dtype)

    def with_zeros(self, zeros: torch.Tensor) -> QuantizedWeight:
        """Same codes and scales, new zero points (the QA-LoRA merge writes here)."""
        return QuantizedWeight(self.packed, self.scales, zeros.to(self.zeros.dtype), self.bits, self.group_size, self.shape)

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> QuantizedWeight:
        """Move to ``device``; ``dtype`` applies to scales and zeros only (codes stay int32)."""
        return QuantizedWeight(
            self.packed.to(device),
            self.scales.to(device, dtype),
            self.zeros.to(device, dtype),
            self.bits,
            self.group_size,
            self.shape,
        )

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.packed, self.scales, self.zeros))

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        meta = torch.tensor([*self.shape, self.bits, self.group_size], dtype=torch.int64)
        return {
            f"{prefix}packed": self.packed,
            f"{prefix}scales": self.scales,
            f"{prefix}zeros": self.zeros,
            f"{prefix}meta": meta,
        }

    @classmethod
    def from_state_dict(cls, tensors: dict[str, torch.Tensor], prefix: str = "") -> QuantizedWeight:
        missing = [f"{prefix}{s}" for s in STATE_SUFFIXES if f"{prefix}{s}" not in tensors]
        if missing:
            raise KeyError(f"Not a QuantizedWeight state: missing {missing}.")
        out_features, in_features, bits, group_size = (int(v) for v in tensors[f"{prefix}meta"].tolist())
        return cls(
            packed=tensors[f"{prefix}packed"],
            scales=tensors[f"{prefix}scales"],
            zeros=tensors[f"{prefix}zeros"],
            bits=bits,
            group_size=group_size,
            shape=(out_features, in_features),
        )

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        save_file({k: v.contiguous().cpu() for k, v in self.state_dict().items()}, path)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> QuantizedWeight:
        from safetensors.torch import load_file

        return cls.from_state_dict(load_file(path, device=device))
