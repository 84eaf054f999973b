"""``QFAAdapterLayer``: a supernet layer wrapped with per-bit-width adapters of one variant each.

Per adapter name the layer holds one set of parameters per candidate bit-width of its base layer,
e.g. ``qfa_A[name]["b{bits}"]`` and ``qfa_B[name]["b{bits}"]`` for QA-LoRA (or a single ``"shared"``
pair for the shared-adapter ablation), ``qfa_scales[name]["b{bits}"]`` for PEQA. What they are and
how the layer computes with them is the adapter's variant (:mod:`peft_qfa.tuner.variants`). A
forward pass uses the parameters of the base layer's ``active_bits`` only, so the other bit-widths'
parameters take no part in the graph and get no gradient (``grad is None``): the optimizer leaves
them, and their moments, untouched.

Saved keys look like ``...q_proj.qfa_A.b3`` (PEFT drops the adapter name), so an adapter saved
under one name loads under any other.
"""

from __future__ import annotations

from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

from ..quant import QuantizedWeight
from ..supernet.layer import BitSelectableLayer
from .merge import merge_into_quantized
from .variants import DEFAULT_VARIANT, QFAVariant, get_variant
from .variants.qa_lora import check_rank, group_sum

SHARED_KEY = "shared"


def bits_key(bits: int) -> str:
    """Key of one bit-width's factors inside an adapter's ``ParameterDict``."""
    return f"b{bits}"


class QFAAdapterLayer(nn.Module, BaseTunerLayer):
    """A bit-selectable supernet layer plus per-bit-width adapters; the output is ``base(x) + adapter(x)``.

    Args:
        base_layer (`BitSelectableLayer`): the supernet layer (a ``QFALinear``) to wrap.
        adapter_name (`str`): name of the first adapter.
        **kwargs: the adapter's settings, see [`~QFAAdapterLayer.update_layer`].
    """

    adapter_layer_names = ("qfa_A", "qfa_B", "qfa_scales", "qfa_offsets")
    other_param_names = ("r", "lora_alpha", "scaling", "qfa_dropout", "mergeable", "shared_adapters", "variant")

    def __init__(self, base_layer: nn.Module, adapter_name: str, **kwargs: Any):
        super().__init__()
        if not isinstance(base_layer, BitSelectableLayer):
            raise TypeError(
                f"QFAAdapterLayer wraps supernet layers (QFALinear), got {type(base_layer).__name__}; build the "
                "supernet with QFAQuantizationConfig first."
            )
        self.base_layer = base_layer
        self.in_features = base_layer.in_features
        self.out_features = base_layer.out_features
        self.group_size = base_layer.group_size
        self.qfa_A = nn.ModuleDict()
        self.qfa_B = nn.ModuleDict()
        self.qfa_scales = nn.ModuleDict()
        self.qfa_offsets = nn.ModuleDict()
        self.qfa_dropout = nn.ModuleDict()
        self.r: dict[str, int] = {}
        self.lora_alpha: dict[str, float] = {}
        self.scaling: dict[str, float] = {}
        self.mergeable: dict[str, bool] = {}
        self.shared_adapters: dict[str, bool] = {}
        self.variant: dict[str, str] = {}
        self._disable_adapters = False
        self.merged_adapters: list[str] = []
        self._active_adapter = adapter_name
        self.update_layer(adapter_name, **kwargs)

    # ------------------------------------------------------------------ adapter state
    def update_layer(
        self,
        adapter_name: str,
        r: int,
        lora_alpha: float,
        lora_dropout: float = 0.0,
        mergeable: bool = True,
        shared_adapters: bool = False,
        init_weights: bool = True,
        inference_mode: bool = False,
        layer_name: str | None = None,
        variant: str = DEFAULT_VARIANT,
    ) -> None:
        """Add the parameters of ``adapter_name``: one set per candidate bit-width (or one shared set)."""
        method = get_variant(variant)
        method.check(self.get_base_layer(), r, mergeable, layer_name)
        base = self.get_base_layer()
        device, dtype = self._get_base_layer_device_and_dtype(base)
        keys = (SHARED_KEY,) if shared_adapters else tuple(bits_key(b) for b in base.candidate_bits)
        self.qfa_dropout[adapter_name] = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.scaling[adapter_name] = lora_alpha / r
        self.mergeable[adapter_name] = mergeable
        self.shared_adapters[adapter_name] = shared_adapters
        self.variant[adapter_name] = variant
        for dict_name, params in method.create(self, adapter_name, keys, {"device": device, "dtype": dtype}).items():
            getattr(self, dict_name)[adapter_name] = params
        self.reset_adapter_parameters(adapter_name, init_weights)
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    def variant_of(self, adapter_name: str) -> type[QFAVariant]:
        """The variant class of ``adapter_name``."""
        return get_variant(self.variant[adapter_name])

    @torch.no_grad()
    def reset_adapter_parameters(self, adapter_name: str, init_weights: bool = True) -> None:
        """The variant's initialisation (QA-LoRA: ``B = 0``, so a fresh adapter is the identity), unless the
        parameters are still on the meta device (``low_cpu_mem_usage``: the values come from a checkpoint)."""
        dicts = [getattr(self, name) for name in self.adapter_layer_names]
        params = [p for d in dicts if adapter_name in d for p in d[adapter_name].values()]
        if any(p.is_meta for p in params):
            return
        self.variant_of(adapter_name).reset(self, adapter_name, init_weights)

    def _get_base_layer_device_and_dtype(self, base_layer: nn.Module):
        # A supernet layer has no float `weight`; its scales carry the device and the float dtype.
        scales = base_layer.quantized(base_layer.candidate_bits[0]).scales
        return scales.device, scales.dtype

    def adapter_factors(
        self, adapter_name: str, bits: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A, B)`` that ``adapter_name`` uses at ``bits`` (default: the base layer's active bits)."""
        base = self.get_base_layer()
        bits = base.active_bits if bits is None else bits
        if bits not in base.candidate_bits:
            raise ValueError(f"This layer holds bit-widths {base.candidate_bits}, not {bits}.")
        key = SHARED_KEY if self.shared_adapters[adapter_name] else bits_key(bits)
        return self.qfa_A[adapter_name][key], self.qfa_B[adapter_name][key]

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        if self.merged:
            return self.base_layer(x, *args, **kwargs)
        bits = self.get_base_layer().active_bits
        names = [name for name in self.active_adapters if name in self.variant]
        replacing = [name for name in names if not self.variant_of(name).adds_to_base]
        if replacing:  # the adapter learns the quantizer: its weight replaces the frozen one
            if len(names) > 1:
                raise ValueError(
                    f"QFA adapter '{replacing[0]}' (variant={self.variant[replacing[0]]!r}) replaces the layer's weight, "
                    f"so it cannot run together with other adapters ({names}); activate one with `set_adapter`."
                )
            return self.variant_of(replacing[0]).forward(self, replacing[0], x, bits)
        result = self.base_layer(x, *args, **kwargs)
        for name in names:
            result = result + self.variant_of(name).forward(self, name, x, bits).to(result.dtype)
        return result

    # ------------------------------------------------------------------ merging
    def _require_mergeable(self, adapter_name: str) -> None:
        if not self.mergeable[adapter_name]:
            raise ValueError(
                f"QFA adapter '{adapter_name}' was created with QFAConfig(mergeable=False) (plain LoRA, A: r x "
                "in_features): its update changes inside a quantization group, so it cannot be folded into integer "
                "weights. Train it with mergeable=True to merge it, or serve it unmerged."
            )

    def _require_in_place(self, adapter_name: str) -> None:
        if not self.variant_of(adapter_name).folds_in_place:
            raise NotImplementedError(
                f"QFA adapter '{adapter_name}' (variant={self.variant[adapter_name]!r}) changes the integer codes or "
                "scales, which the supernet keeps frozen, so it cannot be merged in place; use "
                "`peft_qfa.materialize(model, subnet)` to deploy it."
            )

    def _adapters_to_fold(self, adapter_name: str | None) -> list[str]:
        if adapter_name is not None:
            if adapter_name not in self.variant:
                raise ValueError(
                    f"This layer has no QFA adapter '{adapter_name}'; it has {sorted(self.variant)}."
                )
            return [] if adapter_name in self.merged_adapters else [adapter_name]
        if self.disable_adapters:
            return []
        return [n for n in self.active_adapters if n in self.variant and n not in self.merged_adapters]

    def merged_quantized(self, bits: int | None = None, adapter_name: str | None = None) -> QuantizedWeight:
        """The integer weight the layer computes at ``bits``, adapters included, as codes, scales and zeros.

        QA-LoRA folds into the zero points; the variants that learn the quantizer give their re-scaled or
        re-rounded weight (see each variant's ``deployed``). The layer is unchanged.

        Args:
            bits (`int`, *optional*): bit-width to merge at; defaults to the base layer's ``active_bits``.
            adapter_name (`str`, *optional*): the adapter to fold in; defaults to the active adapters (none when
                adapters are disabled). Adapters already merged in place (``merge()``) are part of the zero points.

        Returns:
            `QuantizedWeight`: what the wrapped layer computes at ``bits``, as codes, scales and zero points.
        """
        base = self.get_base_layer()
        bits = base.active_bits if bits is None else bits
        qweight = base.quantized(bits)
        names = self._adapters_to_fold(adapter_name)
        if len(names) > 1 and not all(self.variant_of(n).adds_to_base for n in names):
            raise ValueError(f"Cannot deploy QFA adapters {names} together: one of them replaces the layer's weight.")
        for name in names:
            qweight = self.variant_of(name).deployed(self, name, qweight)
        return qweight

    @torch.no_grad()
    def _fold(self, adapter_name: str, sign: float, safe_merge: bool = False) -> None:
        """Add (``sign=1``) or take out (``sign=-1``) an adapter from the zero points of every bit-width."""
        base = self.get_base_layer()
        folded = {
            bits: merge_into_quantized(
                base.quantized(bits),
                *self.adapter_factors(adapter_name, bits),
                sign * self.scaling[adapter_name],
            )
            for bits in base.candidate_bits
        }
        if safe_merge and not all(torch.isfinite(q.zeros).all() for q in folded.values()):
            raise ValueError(
                f"NaNs detected in the merged zero points; the QFA adapter '{adapter_name}' seems to be broken."
            )
        for bits, qweight in folded.items():
            base.quantized(bits).zeros.copy_(qweight.zeros)  # `quantized()` views the layer's own tensors

    def merge(self, safe_merge: bool = False, adapter_names: list[str] | None = None) -> None:
        """Fold adapters into the zero points of *every* bit-width in place (each bit-width gets its own adapter).

        The supernet stays a supernet: any subnet of the merged model computes what it computed with the
        adapters. ``merge_and_unload()`` therefore returns a plain supernet with the adapters built in.
        """
        adapter_names = check_adapters_to_merge(self, adapter_names)
        for name in adapter_names:
            if name not in self.variant:
                continue
            self._require_in_place(name)
            self._require_mergeable(name)
            self._fold(name, 1.0, safe_merge)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """Take merged adapters out of the zero points again (exact up to float rounding)."""
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            if name in self.variant:
                self._fold(name, -1.0)

    def extra_repr(self) -> str:
        return f"adapters={dict(sorted(self.variant.items()))}, bits={self.get_base_layer().candidate_bits}"

    def __repr__(self) -> str:
        return "qfa." + super().__repr__()


__all__ = ["SHARED_KEY", "QFAAdapterLayer", "bits_key", "check_rank", "group_sum"]
