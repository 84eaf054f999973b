"""``QFAModel``: which modules of a supernet get QFA adapters, and the model-level merge.

Every check runs before the first module is replaced (``_prepare_model``), so a bad config leaves
the model untouched: targets must be supernet layers, a mergeable adapter's rank must fit every
target, and the adapter's recorded bit-widths and group size must be the supernet's.
"""

from __future__ import annotations

from collections.abc import Mapping

from peft.tuners.tuners_utils import BaseTuner
from torch import nn

from ..quant import QuantizedWeight
from ..supernet.integrity import check_fingerprint
from ..supernet.layer import BitSelectableLayer, canonical_layer_name
from ..supernet.space import Subnet
from ..supernet.subnet import as_subnet
from .config import ALL_LINEAR, QFA_PREFIX, QFAConfig
from .layer import QFAAdapterLayer
from .variants import get_variant


def _supernet_layer(module: nn.Module) -> BitSelectableLayer | None:
    """The supernet layer a module is, or wraps (a ``QFAAdapterLayer`` from an earlier adapter); else None."""
    if isinstance(module, QFAAdapterLayer):
        return module.get_base_layer()
    return module if isinstance(module, BitSelectableLayer) else None


class QFAModel(BaseTuner):
    """Adds per-bit-width QFA adapters to the supernet layers of a model; built by ``get_peft_model``.

    Example:

    ```py
    >>> import peft_qfa
    >>> from peft import get_peft_model
    >>> from peft_qfa import QFAConfig, QFAQuantizationConfig
    >>> from transformers import AutoModelForCausalLM

    >>> supernet = AutoModelForCausalLM.from_pretrained(
    ...     base_id, quantization_config=QFAQuantizationConfig(bits=(2, 3, 4), group_size=64, method="rtn")
    ... )
    >>> model = get_peft_model(supernet, QFAConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    >>> peft_qfa.set_subnet(model, peft_qfa.search_space(model).uniform(3))  # the 3-bit adapters train now
    ```
    """

    prefix: str = QFA_PREFIX
    tuner_layer_cls = QFAAdapterLayer
    target_module_mapping: dict[
        str, list[str]
    ] = {}  # QFAConfig defaults to "all-linear", which fits every model

    # ------------------------------------------------------------------ targeting and checks
    def _candidate_modules(self, model: nn.Module) -> dict[str, nn.Module]:
        """Module names PEFT will try to match: everything except the insides of existing adapter layers."""
        adapter_layers = [name for name, m in model.named_modules() if isinstance(m, QFAAdapterLayer)]
        return {
            name: module
            for name, module in model.named_modules()
            if name and not any(name.startswith(f"{layer}.") for layer in adapter_layers)
        }

    def _prepare_model(self, peft_config: QFAConfig, model: nn.Module) -> None:
        candidates = self._candidate_modules(model)
        if peft_config.target_modules == ALL_LINEAR:
            # PEFT's own "all-linear" looks for nn.Linear, which a supernet layer is not.
            peft_config.target_modules = {
                name for name, m in candidates.items() if _supernet_layer(m) is not None
            }
            if not peft_config.target_modules:
                raise ValueError(
                    f"QFAConfig(target_modules='all-linear') found no supernet layer in {type(model).__name__}; load "
                    "the model with `quantization_config=QFAQuantizationConfig(...)` (after `import peft_qfa`) first."
                )
        targets = {
            name: m for name, m in candidates.items() if self._check_target_module_exists(peft_config, name)
        }
        not_supernet = {name: type(m).__name__ for name, m in targets.items() if _supernet_layer(m) is None}
        if not_supernet:
            raise ValueError(
                f"QFAConfig(target_modules={peft_config.target_modules!r}) matches {len(not_supernet)} module(s) that are "
                f"not supernet layers, e.g. {dict(list(not_supernet.items())[:3])}. The QFA tuner only adapts QFALinear "
                "layers (full-precision layers such as `lm_head` have no integer weights to merge into): remove them "
                "from `target_modules`, add them to `exclude_modules`, or train them fully with `modules_to_save`."
            )
        layers = {name: _supernet_layer(m) for name, m in targets.items()}
        self._record_supernet_grid(peft_config, layers)
        peft_config.supernet_fingerprint = check_fingerprint(peft_config.supernet_fingerprint, model) or (
            peft_config.supernet_fingerprint
        )
        variant = get_variant(peft_config.variant)
        for name, layer in layers.items():
            variant.check(layer, peft_config.r, peft_config.mergeable, name)

    @staticmethod
    def _record_supernet_grid(peft_config: QFAConfig, layers: Mapping[str, BitSelectableLayer]) -> None:
        """Write the supernet's bits/group size into a fresh config; check them against a loaded one."""
        grids = {(layer.candidate_bits, layer.group_size) for layer in layers.values()}
        if peft_config.bits is None or peft_config.group_size is None:
            if len(grids) > 1:
                raise ValueError(
                    f"QFAConfig: the targeted supernet layers hold different (bits, group_size) settings {sorted(grids)}; "
                    "one adapter config records one. Target layers of one setting per adapter (`target_modules` / "
                    "`exclude_modules`)."
                )
            (bits, group_size), *_ = grids
            peft_config.bits = list(bits) if peft_config.bits is None else peft_config.bits
            peft_config.group_size = group_size if peft_config.group_size is None else peft_config.group_size
        expected = (tuple(peft_config.bits), peft_config.group_size)
        wrong = {name: (layer.candidate_bits, layer.group_size) for name, layer in layers.items()}
        wrong = {name: grid for name, grid in wrong.items() if grid != expected}
        if wrong:
            name, (bits, group_size) = next(iter(wrong.items()))
            raise ValueError(
                f"This QFA adapter belongs to a supernet with bits={expected[0]} and group_size={expected[1]}, but "
                f"{len(wrong)} targeted layer(s) differ, e.g. `{name}` holds bits={bits} with group_size={group_size}. "
                f"Load it onto a supernet built with QFAQuantizationConfig(bits={expected[0]}, "
                f"group_size={expected[1]})."
            )

    # ------------------------------------------------------------------ module creation
    def _create_and_replace(
        self,
        peft_config: QFAConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        settings = {
            "r": peft_config.r,
            "lora_alpha": peft_config.lora_alpha,
            "lora_dropout": peft_config.lora_dropout,
            "mergeable": peft_config.mergeable,
            "shared_adapters": peft_config.shared_adapters,
            "init_weights": peft_config.init_weights,
            "inference_mode": peft_config.inference_mode,
            "layer_name": current_key,
            "variant": peft_config.variant,
        }
        if isinstance(target, QFAAdapterLayer):
            target.update_layer(adapter_name, **settings)
            return
        new_module = QFAAdapterLayer(target, adapter_name, **settings)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _replace_module(
        self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module
    ) -> None:
        # BaseTuner's version copies `child.weight` onto unloaded modules; a supernet layer has no float weight, and
        # the adapters are already created on the base layer's device.
        setattr(parent, child_name, new_module)

    # ------------------------------------------------------------------ merged integer weights
    def merged_quantized_weights(
        self, subnet: Subnet | Mapping[str, int] | None = None, adapter_name: str | None = None
    ) -> dict[str, QuantizedWeight]:
        """See [`merged_quantized_weights`]."""
        return merged_quantized_weights(self.model, subnet, adapter_name)


def merged_quantized_weights(
    model: nn.Module, subnet: Subnet | Mapping[str, int] | None = None, adapter_name: str | None = None
) -> dict[str, QuantizedWeight]:
    """The integer weights of every supernet layer at ``subnet``'s bit-widths, with their adapters merged in.

    This is what a deployed subnet holds: each layer's codes and scales at its chosen bit-width and zero points
    shifted by its adapter (``merge_into_quantized``). The model itself is not changed, and layers without an
    adapter come back as stored.

    Args:
        model (`nn.Module`): a supernet with QFA adapters (a `PeftModel`, a `QFAModel` or a model with adapters
            loaded through transformers' `load_adapter`), or a bare supernet.
        subnet (`Subnet` or `dict[str, int]`, *optional*): the bit-width per group (``{group: bits}`` as for
            ``set_subnet``); defaults to the layers' current ``active_bits``.
        adapter_name (`str`, *optional*): the adapter to merge; defaults to the active adapter(s).

    Returns:
        `dict[str, QuantizedWeight]`: ``{layer name: merged weight}``, names as in the unwrapped model
        (``model.layers.0.self_attn.q_proj``).
    """
    if subnet is None:
        layer_bits = None
    else:
        sub = as_subnet(model, subnet)
        layer_bits = sub.layer_bits()
    adapter_layers = {
        canonical_layer_name(name): m for name, m in model.named_modules() if isinstance(m, QFAAdapterLayer)
    }
    if adapter_name is not None:
        # A layer excluded from this adapter keeps its stored weight; a name no layer knows is a mistake.
        known = sorted({n for layer in adapter_layers.values() for n in layer.variant})
        if adapter_name not in known:
            raise ValueError(f"The model has no QFA adapter '{adapter_name}'; its adapters are {known}.")
        adapter_layers = {n: layer for n, layer in adapter_layers.items() if adapter_name in layer.variant}
    merged: dict[str, QuantizedWeight] = {}
    for name, module in model.named_modules():
        if not isinstance(module, BitSelectableLayer):
            continue
        layer_name = canonical_layer_name(name)
        if layer_bits is not None and layer_name not in layer_bits:
            raise ValueError(
                f"The subnet gives no bit-width for layer `{layer_name}`; it belongs to another model."
            )
        bits = module.active_bits if layer_bits is None else layer_bits[layer_name]
        wrapper = adapter_layers.get(layer_name)
        merged[layer_name] = (
            module.quantized(bits) if wrapper is None else wrapper.merged_quantized(bits, adapter_name)
        )
    return merged


def adapter_variants(model: nn.Module, adapter_name: str | None = None) -> dict[str, str]:
    """``{adapter name: variant}`` of the model's QFA adapters (only ``adapter_name``'s, when given)."""
    found = {}
    for module in model.modules():
        if isinstance(module, QFAAdapterLayer):
            found.update(module.variant)
    return found if adapter_name is None else {k: v for k, v in found.items() if k == adapter_name}


def trainable_parameters(model: nn.Module, adapter_name: str) -> int:
    """Parameters ``adapter_name`` trains at one bit-width (summed over its layers, from its variant's cost rule)."""
    total = 0
    for module in model.modules():
        if isinstance(module, QFAAdapterLayer) and adapter_name in module.variant:
            base = module.get_base_layer()
            total += module.variant_of(adapter_name).trainable_parameters(
                base.in_features, base.out_features, base.group_size, module.r[adapter_name]
            )
    return total


__all__ = ["QFAModel", "adapter_variants", "merged_quantized_weights", "trainable_parameters"]
