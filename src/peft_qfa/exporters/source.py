"""What every exporter reads: the packed layers of a materialized subnet, each as codes, scales and zeros.

An exporter never touches a supernet: only a materialized model (one :class:`QFAPackedLinear` per
quantized linear, adapters already merged into the float zero points) has one integer weight per
layer, which is what a target format stores.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..quant.grid import dequantize
from ..supernet.config import unwrap_model
from ..supernet.layer import BitSelectableLayer
from ..supernet.packed_layer import QFAPackedLinear


@dataclass(frozen=True)
class PackedTensors:
    """One packed layer unpacked: ``w = (codes - zeros) * scales`` per group of ``group_size`` inputs."""

    codes: torch.Tensor  # uint8 [out, in]
    scales: torch.Tensor  # float [out, in // group_size]
    zeros: torch.Tensor  # float [out, in // group_size]
    bias: torch.Tensor | None
    bits: int
    group_size: int

    @classmethod
    def of(cls, layer: QFAPackedLinear) -> PackedTensors:
        qweight = layer.quantized()
        bias = None if layer.bias is None else layer.bias.detach()
        return cls(
            qweight.codes(),
            qweight.scales.detach(),
            qweight.zeros.detach(),
            bias,
            layer.bits,
            layer.group_size,
        )

    def dequantize(self) -> torch.Tensor:
        """The float32 weight, computed as our own layers do (the reference an export is compared to)."""
        return dequantize(self.codes, self.scales, self.zeros, self.group_size, torch.float32)


def load_materialized(source: str | os.PathLike) -> nn.Module:
    """A materialized model saved by ``save_pretrained`` (or ``peft-qfa export``), read with peft_qfa's loader."""
    from transformers import AutoModelForCausalLM

    folder = Path(source).expanduser()
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"export: `{source}` is not a model folder (no config.json); give a materialized model saved by "
            "`peft-qfa export` or `model.save_pretrained`."
        )
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def packed_layers(model: nn.Module) -> dict[str, QFAPackedLinear]:
    """``{module name: QFAPackedLinear}`` of a materialized model; a clear error for anything else."""
    base = unwrap_model(model)
    found: dict[str, QFAPackedLinear] = {}
    supernet_layers = []
    for name, module in base.named_modules():
        if isinstance(module, QFAPackedLinear):
            found[name] = module
        elif isinstance(module, BitSelectableLayer):
            supernet_layers.append(name)
    if supernet_layers:
        raise ValueError(
            f"export: the model is a supernet (e.g. `{supernet_layers[0]}` holds several bit-widths); materialize "
            "one subnet first with peft_qfa.materialize(model, subnet) or `peft-qfa export SUPERNET OUT --budget ...`."
        )
    if not found:
        raise ValueError(
            "export: the model has no QFAPackedLinear layer; give a materialized QFA model "
            "(peft_qfa.materialize or a folder written by `peft-qfa export`)."
        )
    return found


__all__ = ["PackedTensors", "load_materialized", "packed_layers"]
