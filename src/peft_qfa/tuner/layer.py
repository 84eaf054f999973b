"""``QFAAdapterLayer``: a supernet layer wrapped with per-bit-width low-rank adapters.

Per adapter name the layer holds one pair of factors per candidate bit-width of its base layer,
``qfa_A[name]["b{bits}"]`` and ``qfa_B[name]["b{bits}"]`` (or a single ``"shared"`` pair for the
shared-adapter ablation). A forward pass uses the pair of the base layer's ``active_bits`` only, so
the other bit-widths' factors take no part in the graph and get no gradient (``grad is None``):
the optimizer leaves them, and their moments, untouched.

Saved keys look like ``...q_proj.qfa_A.b3`` (PEFT drops the adapter name), so an adapter saved
under one name loads under any other.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTunerLayer, check_adapters_to_merge
from torch import nn

from ..quant import QuantizedWeight
from ..supernet.layer import BitSelectableLayer
from .merge import merge_into_quantized

SHARED_KEY = "shared"


def bits_key(bits: int) -> str:
    """Key of one bit-width's factors inside an adapter's ``ParameterDict``."""
    return f"b{bits}"


def check_rank(
    r: int, in_features: int, group_size: int, mergeable: bool, layer_name: str | None = None
) -> None:
    """Refuse a mergeable adapter whose rank exceeds its number of quantization groups (the columns of A)."""
    n_groups = in_features // group_size
    if mergeable and r > n_groups:
        where = f" for layer `{layer_name}`" if layer_name else ""
        raise ValueError(
            f"QFAConfig: r={r} is larger than in_features / group_size = {in_features} / {group_size} = {n_groups}"
            f"{where}; the mergeable (QA-LoRA) adapter's A has only {n_groups} columns, so its rank cannot exceed "
            f"{n_groups}. Lower `r` to at most {n_groups}, exclude the layer with `exclude_modules`, or use "
            "mergeable=False (plain LoRA, which cannot be merged into the integer weights)."
        )


def group_sum(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Sum ``x [..., in]`` over consecutive groups of ``group_size`` features: ``[..., in // group_size]``."""
    return x.unflatten(-1, (x.shape[-1] // group_size, group_size)).sum(-1)


class QFAAdapterLayer(nn.Module, BaseTunerLayer):
    """A bit-selectable supernet layer plus per-bit-width adapters; the output is ``base(x) + adapter(x)``.

    Args:
        base_layer (`BitSelectableLayer`): the supernet layer (a ``QFALinear``) to wrap.
        adapter_name (`str`): name of the first adapter.
        **kwargs: the adapter's settings, see [`~QFAAdapterLayer.update_layer`].
    """

    adapter_layer_names = ("qfa_A", "qfa_B")
    other_param_names = ("r", "lora_alpha", "scaling", "qfa_dropout", "mergeable", "shared_adapters")

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
        self.qfa_dropout = nn.ModuleDict()
        self.r: dict[str, int] = {}
        self.lora_alpha: dict[str, float] = {}
        self.scaling: dict[str, float] = {}
        self.mergeable: dict[str, bool] = {}
        self.shared_adapters: dict[str, bool] = {}
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
    ) -> None:
        """Add the factors of ``adapter_name``: one ``(A, B)`` pair per candidate bit-width (or one shared pair)."""
        check_rank(r, self.in_features, self.group_size, mergeable, layer_name)
        base = self.get_base_layer()
        device, dtype = self._get_base_layer_device_and_dtype(base)
        in_dim = self.in_features // self.group_size if mergeable else self.in_features
        keys = (SHARED_KEY,) if shared_adapters else tuple(bits_key(b) for b in base.candidate_bits)
        factory = {"device": device, "dtype": dtype}
        self.qfa_A[adapter_name] = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(r, in_dim, **factory)) for key in keys}
        )
        self.qfa_B[adapter_name] = nn.ParameterDict(
            {key: nn.Parameter(torch.empty(self.out_features, r, **factory)) for key in keys}
        )
        self.qfa_dropout[adapter_name] = nn.Dropout(lora_dropout) if lora_dropout > 0 else nn.Identity()
        self.r[adapter_name] = r
        self.lora_alpha[adapter_name] = lora_alpha
        self.scaling[adapter_name] = lora_alpha / r
        self.mergeable[adapter_name] = mergeable
        self.shared_adapters[adapter_name] = shared_adapters
        self.reset_adapter_parameters(adapter_name, init_weights)
        self.set_adapter(self.active_adapters, inference_mode=inference_mode)

    @torch.no_grad()
    def reset_adapter_parameters(self, adapter_name: str, init_weights: bool = True) -> None:
        """A uniform in ``±1/sqrt(in_features)``; B zero (a fresh adapter is the identity) unless ``init_weights=False``.

        The bound is ``nn.Linear``'s default for ``in_features`` inputs in both forms: a mergeable A acts on
        group *sums*, i.e. it is the ``[r, in_features]`` matrix that repeats each column ``group_size`` times,
        so its fan-in is ``in_features``, not ``in_features // group_size``. Both forms start at the same scale.
        """
        if any(p.is_meta for p in self.qfa_A[adapter_name].values()):
            return  # low_cpu_mem_usage: the values come from a checkpoint
        bound = 1.0 / math.sqrt(self.in_features)
        for key, A in self.qfa_A[adapter_name].items():
            nn.init.uniform_(A, -bound, bound)
            B = self.qfa_B[adapter_name][key]
            if init_weights:
                nn.init.zeros_(B)
            else:
                nn.init.kaiming_uniform_(B, a=math.sqrt(5))  # nn.Linear's default for B's fan-in r

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
    def _adapter_output(self, x: torch.Tensor, adapter_name: str, bits: int) -> torch.Tensor:
        A, B = self.adapter_factors(adapter_name, bits)
        x = self._cast_input_dtype(x, A.dtype)
        x = self.qfa_dropout[adapter_name](x)
        if self.mergeable[adapter_name]:
            x = group_sum(x, self.group_size)
        return F.linear(F.linear(x, A), B) * self.scaling[adapter_name]

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.disable_adapters:
            if self.merged:
                self.unmerge()
            return self.base_layer(x, *args, **kwargs)
        result = self.base_layer(x, *args, **kwargs)
        if self.merged:
            return result
        bits = self.get_base_layer().active_bits
        for name in self.active_adapters:
            if name in self.qfa_A:
                result = result + self._adapter_output(x, name, bits).to(result.dtype)
        return result

    # ------------------------------------------------------------------ merging
    def _require_mergeable(self, adapter_name: str) -> None:
        if not self.mergeable[adapter_name]:
            raise ValueError(
                f"QFA adapter '{adapter_name}' was created with QFAConfig(mergeable=False) (plain LoRA, A: r x "
                "in_features): its update changes inside a quantization group, so it cannot be folded into integer "
                "weights. Train it with mergeable=True to merge it, or serve it unmerged."
            )

    def _adapters_to_fold(self, adapter_name: str | None) -> list[str]:
        if adapter_name is not None:
            if adapter_name not in self.qfa_A:
                raise ValueError(
                    f"This layer has no QFA adapter '{adapter_name}'; it has {sorted(self.qfa_A)}."
                )
            return [] if adapter_name in self.merged_adapters else [adapter_name]
        if self.disable_adapters:
            return []
        return [n for n in self.active_adapters if n in self.qfa_A and n not in self.merged_adapters]

    def merged_quantized(self, bits: int | None = None, adapter_name: str | None = None) -> QuantizedWeight:
        """The base integer weight at ``bits`` with adapters folded into its zero points (the layer is unchanged).

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
        for name in self._adapters_to_fold(adapter_name):
            self._require_mergeable(name)
            qweight = merge_into_quantized(qweight, *self.adapter_factors(name, bits), self.scaling[name])
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
            if name not in self.qfa_A:
                continue
            self._require_mergeable(name)
            self._fold(name, 1.0, safe_merge)
            self.merged_adapters.append(name)

    def unmerge(self) -> None:
        """Take merged adapters out of the zero points again (exact up to float rounding)."""
        while self.merged_adapters:
            name = self.merged_adapters.pop()
            if name in self.qfa_A:
                self._fold(name, -1.0)

    def extra_repr(self) -> str:
        return f"adapters={sorted(self.qfa_A)}, bits={self.get_base_layer().candidate_bits}"

    def __repr__(self) -> str:
        return "qfa." + super().__repr__()


__all__ = ["SHARED_KEY", "QFAAdapterLayer", "bits_key", "check_rank", "group_sum"]
