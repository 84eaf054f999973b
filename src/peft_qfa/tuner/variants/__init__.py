"""The QFA tuner's adapter methods, one module each, chosen by ``QFAConfig(variant=...)``.

``qa-lora`` (the default) adds a mergeable adapter to the frozen integer layer; ``peqa``, ``l4q`` and
``lr-qat`` learn the quantizer itself and deploy re-quantized (or re-scaled) integer weights. Every
variant keeps its own parameters per bit-width and produces the same packed format when materialized.
"""

from __future__ import annotations

from .base import QFAVariant
from .l4q import L4QVariant
from .lr_qat import LRQATVariant
from .peqa import PEQAVariant
from .qa_lora import QALoRAVariant

VARIANTS: dict[str, type[QFAVariant]] = {v.name: v for v in (QALoRAVariant, PEQAVariant, L4QVariant, LRQATVariant)}
"""``QFAConfig.variant`` -> the class that implements it."""

DEFAULT_VARIANT = QALoRAVariant.name


def get_variant(name: str) -> type[QFAVariant]:
    """The variant class called ``name``; a ValueError lists the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"QFAConfig: unknown `variant={name!r}`; choose one of {sorted(VARIANTS)}.")
    return VARIANTS[name]


__all__ = ["DEFAULT_VARIANT", "VARIANTS", "L4QVariant", "LRQATVariant", "PEQAVariant", "QALoRAVariant",
           "QFAVariant", "get_variant"]
