"""``QFAConfig``: settings of the QFA tuner's per-bit-width adapters (a dataclass, no torch logic)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from peft import PeftConfig

from .._compat import extend_peft_type
from ..quant import SUPPORTED_BITS
from .variants import DEFAULT_VARIANT, VARIANTS

QFA_NAME = "qfa"
"""Registered name of the tuner (lower case, as ``register_peft_method`` requires)."""

QFA_PREFIX = "qfa_"
"""Name prefix of every adapter parameter, as PEFT's ``prefix`` convention asks (``"lora_"`` for LoRA)."""

QFA_PEFT_TYPE = extend_peft_type(QFA_NAME)
"""``PeftType.QFA``; the enum is closed, so :mod:`peft_qfa._compat.peft_type` adds the member."""

ALL_LINEAR = "all-linear"
FORMAT_VERSION = 1
"""Bumped when the meaning of a saved field changes; an adapter saved by a newer format is refused."""


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class QFAConfig(PeftConfig):
    """Configuration of a [`QFAModel`]: one low-rank adapter per candidate bit-width of every supernet layer.

    The adapter that runs in a forward pass is the one of the layer's ``active_bits`` (set with
    ``peft_qfa.set_subnet``), so each bit-width's adapter only ever learns to correct its own quantization
    error (LLM-QFA's decoupled adapters, https://arxiv.org/abs/2405.20202).

    Args:
        variant (`str`, *optional*, defaults to `"qa-lora"`):
            The adapter method (:mod:`peft_qfa.tuner.variants`), every one with its own parameters per bit-width:
            ``"qa-lora"`` adds a group-pooled low-rank adapter to the frozen integer layer
            (https://arxiv.org/abs/2309.14717); ``"peqa"`` trains only the per-group scales over the frozen codes
            (https://arxiv.org/abs/2305.14152); ``"l4q"`` adds plain LoRA to a higher-precision copy of the weight
            before a learned LSQ+ quantizer (https://arxiv.org/abs/2402.04902; needs a supernet with at least two
            bit-widths, the highest being the copy); ``"lr-qat"`` adds the low-rank update inside the rounding, in
            integer-grid units, with learned scales (https://arxiv.org/abs/2406.06385; bit-widths up to 6). The last
            three re-scale or re-round the integers, so they deploy through ``peft_qfa.materialize`` only (no
            in-place ``merge()``), and ``mergeable`` / ``shared_adapters`` / ``lora_dropout`` are QA-LoRA's alone.
        r (`int`, *optional*, defaults to 16):
            Adapter rank. In the mergeable (QA-LoRA) form it cannot exceed ``in_features // group_size`` of
            any targeted layer, the number of columns of ``A``.
        lora_alpha (`float`, *optional*, defaults to 32):
            The adapter output is scaled by ``lora_alpha / r``.
        lora_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the adapter's input during training. In eval mode it is the identity, so merged and
            unmerged outputs agree; in training mode they do not.
        target_modules (`str` or `list[str]`, *optional*, defaults to `"all-linear"`):
            ``"all-linear"`` adapts every supernet layer (``QFALinear``); otherwise PEFT's usual list of name
            suffixes or a regex. Every module it matches must be a supernet layer: full-precision
            ``nn.Linear`` layers (``lm_head``, modules the supernet did not quantize) are refused.
        exclude_modules (`str` or `list[str]`, *optional*):
            Modules not to adapt, with the same matching rules.
        mergeable (`bool`, *optional*, defaults to `True`):
            `True`: the QA-LoRA form, ``A: r x (in_features / group_size)`` applied to the input summed over
            each quantization group, which folds exactly into the zero points of the integer weights (see
            `merge_into_quantized`). `False`: plain LoRA, ``A: r x in_features``, for comparison only; its
            update varies inside a group, so it cannot be merged into integer weights (merging raises).
        shared_adapters (`bool`, *optional*, defaults to `False`):
            `True` trains one adapter that every bit-width uses (the paper's interference baseline) instead of
            one independent adapter per bit-width.
        init_weights (`bool`, *optional*, defaults to `True`):
            `True`: ``B = 0`` (a fresh adapter changes nothing) and ``A`` Kaiming-uniform. `False`: ``B`` random
            as well, so a fresh adapter changes the output; for tests of merging and saving.
        modules_to_save (`list[str]`, *optional*):
            Extra modules trained fully and saved with the adapter (PEFT's usual meaning).
        layers_to_transform (`int` or `list[int]`, *optional*), layers_pattern (`str` or `list[str]`, *optional*):
            Restrict the targets to some decoder layers (PEFT's usual meaning).
        bits (`list[int]`, *optional*):
            Candidate bit-widths of the supernet the adapter belongs to. Recorded from the supernet when the
            adapter is created; an adapter is refused on a supernet with other bit-widths.
        group_size (`int`, *optional*):
            Quantization group size of that supernet; recorded and checked the same way.
        supernet_fingerprint (`str`, *optional*):
            A hash of the supernet the adapter was created on (its layers and a few integer codes, see
            `peft_qfa.supernet.integrity.supernet_fingerprint`). Recorded when the adapter is created; loading
            the adapter onto another supernet is refused unless wrapped in ``peft_qfa.allow_other_supernet()``.
        format_version (`int`, *optional*):
            Version of this config's saved form; written by the library, not by users.
    """

    variant: str = field(
        default=DEFAULT_VARIANT,
        metadata={"help": "Adapter method: 'qa-lora' (default), 'peqa', 'l4q' or 'lr-qat'."},
    )
    r: int = field(
        default=16, metadata={"help": "Adapter rank (at most in_features // group_size when mergeable)."}
    )
    lora_alpha: float = field(default=32, metadata={"help": "Adapter output is scaled by lora_alpha / r."})
    lora_dropout: float = field(
        default=0.0, metadata={"help": "Dropout on the adapter input during training."}
    )
    target_modules: list[str] | str | None = field(
        default=ALL_LINEAR,
        metadata={"help": "'all-linear' (every QFALinear), a list of module name suffixes, or a regex."},
    )
    exclude_modules: list[str] | str | None = field(
        default=None, metadata={"help": "Module names or a regex not to adapt."}
    )
    mergeable: bool = field(
        default=True,
        metadata={
            "help": "QA-LoRA form (group-pooled input), exactly mergeable into the zero points; False = plain LoRA."
        },
    )
    shared_adapters: bool = field(
        default=False,
        metadata={"help": "One adapter shared by every bit-width (ablation) instead of one per bit-width."},
    )
    init_weights: bool = field(
        default=True, metadata={"help": "True: B = 0 (identity at start). False: random B (for tests)."}
    )
    modules_to_save: list[str] | None = field(
        default=None, metadata={"help": "Extra modules trained fully and saved with the adapter."}
    )
    layers_to_transform: list[int] | int | None = field(
        default=None, metadata={"help": "Only adapt these decoder layer indices."}
    )
    layers_pattern: list[str] | str | None = field(
        default=None,
        metadata={"help": "Name of the layer list that layers_to_transform indexes, e.g. 'layers'."},
    )
    bits: list[int] | None = field(
        default=None,
        metadata={"help": "Candidate bit-widths of the supernet; recorded when the adapter is created."},
    )
    group_size: int | None = field(
        default=None,
        metadata={"help": "Quantization group size of the supernet; recorded when the adapter is created."},
    )
    supernet_fingerprint: str | None = field(
        default=None,
        metadata={"help": "Hash of the supernet the adapter was created on; recorded and checked when loaded."},
    )
    format_version: int = field(
        default=FORMAT_VERSION, metadata={"help": "Saved-format version of this config."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = QFA_PEFT_TYPE
        # normalise
        if self.target_modules is None:
            self.target_modules = ALL_LINEAR
        if isinstance(self.target_modules, (list, tuple)):
            self.target_modules = set(self.target_modules)
        if isinstance(self.exclude_modules, (list, tuple)):
            self.exclude_modules = set(self.exclude_modules)
        if self.bits is not None:
            self.bits = self._normalised_bits(self.bits)
        # validate
        if not _is_int(self.format_version) or self.format_version < 1:
            raise ValueError(
                f"QFAConfig: `format_version` must be a positive int, got {self.format_version!r}."
            )
        if self.format_version > FORMAT_VERSION:
            raise ValueError(
                f"This QFA adapter was saved with config format {self.format_version}, newer than this peft-qfa "
                f"understands ({FORMAT_VERSION}); upgrade peft-qfa to load it."
            )
        if not _is_int(self.r) or self.r <= 0:
            raise ValueError(f"QFAConfig: `r` must be a positive int (e.g. 8 or 16), got {self.r!r}.")
        if (
            isinstance(self.lora_alpha, bool)
            or not isinstance(self.lora_alpha, (int, float))
            or not math.isfinite(self.lora_alpha)
            or self.lora_alpha <= 0
        ):
            raise ValueError(f"QFAConfig: `lora_alpha` must be a positive number (finite, not NaN), got {self.lora_alpha!r}.")
        if (
            isinstance(self.lora_dropout, bool)
            or not isinstance(self.lora_dropout, (int, float))
            or not 0 <= self.lora_dropout < 1
        ):
            raise ValueError(f"QFAConfig: `lora_dropout` must be in [0, 1), got {self.lora_dropout!r}.")
        for name in ("mergeable", "shared_adapters", "init_weights"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"QFAConfig: `{name}` must be True or False, got {getattr(self, name)!r}.")
        if self.variant not in VARIANTS:
            raise ValueError(f"QFAConfig: unknown `variant={self.variant!r}`; choose one of {sorted(VARIANTS)}.")
        if self.variant != DEFAULT_VARIANT:
            qa_lora_only = {"mergeable": False, "shared_adapters": True}
            for name, value in qa_lora_only.items():
                if getattr(self, name) == value:
                    raise ValueError(
                        f"QFAConfig: `{name}={value}` is a QA-LoRA setting; `variant={self.variant!r}` has no such form. "
                        f"Drop `{name}` or use variant='qa-lora'."
                    )
            if self.lora_dropout:
                raise ValueError(
                    f"QFAConfig: `lora_dropout` applies to QA-LoRA's adapter input only; `variant={self.variant!r}` "
                    "changes the weight itself. Set lora_dropout=0."
                )
        if self.group_size is not None and (not _is_int(self.group_size) or self.group_size <= 0):
            raise ValueError(f"QFAConfig: `group_size` must be a positive int, got {self.group_size!r}.")
        if self.layers_pattern and self.layers_to_transform is None:
            raise ValueError(
                "QFAConfig: `layers_pattern` only applies together with `layers_to_transform`; set both or neither."
            )

    @staticmethod
    def _normalised_bits(bits) -> list[int]:
        if isinstance(bits, (int, str)) or not all(_is_int(b) for b in bits):
            raise TypeError(f"QFAConfig: `bits` must be a list of ints like [2, 3, 4], got {bits!r}.")
        unknown = [b for b in bits if b not in SUPPORTED_BITS]
        if unknown or not bits:
            raise ValueError(
                f"QFAConfig: unsupported bit-width(s) in `bits={list(bits)}`; choose from {SUPPORTED_BITS}."
            )
        return sorted(set(bits))

    @property
    def scaling(self) -> float:
        """Factor on the adapter output, ``lora_alpha / r``."""
        return self.lora_alpha / self.r


__all__ = ["ALL_LINEAR", "FORMAT_VERSION", "QFAConfig"]
