"""Upstream patches 2-7 of 7: the places peft-qfa changes transformers objects it does not own.

Each function is the only place its patch is made, checks first that the installed transformers
still has what it touches (``ImportError`` naming the supported range otherwise: the version
gate), and names the upstream hook that would make it unnecessary. They import nothing of
peft-qfa; the callers pass in what they install.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import MethodType
from typing import Any

import transformers
import transformers.quantizers.auto as transformers_quantizers_auto
from transformers.quantizers.auto import AutoHfQuantizer

SUPPORTED_TRANSFORMERS = "transformers>=5.17,<6 (tested with 5.17.0 and 5.24.0)"


def _require(condition: bool, what: str) -> None:
    """The version gate: the installed transformers must still have ``what``."""
    if not condition:
        raise ImportError(
            f"peft-qfa relies on {what}, which the installed transformers {transformers.__version__} lacks. "
            f"peft-qfa supports {SUPPORTED_TRANSFORMERS}; install one of those, e.g. `pip install 'transformers>=5.17,<6'`."
        )


def accept_loading_attributes(config_cls: type) -> None:
    """Let ``config_cls.get_loading_attributes()`` reach the quantizer of a saved checkpoint.

    transformers merges a user's config into a pre-quantized checkpoint's config only for the
    config classes listed in the module-level tuple ``LOADING_ATTRIBUTES_CONFIG_TYPES``
    (``transformers/quantizers/auto.py``, read at call time by ``merge_quantization_configs``); for
    any other class the user's load-time options (the ``budget``) would be dropped with a warning.
    The class is appended to that tuple once (idempotent).

    Upstream hook that would make this unnecessary: a registration argument, e.g.
    ``register_quantization_config(name, loading_attributes=True)``.
    """
    types = getattr(transformers_quantizers_auto, "LOADING_ATTRIBUTES_CONFIG_TYPES", None)
    _require(isinstance(types, tuple), "transformers.quantizers.auto.LOADING_ATTRIBUTES_CONFIG_TYPES")
    if config_cls not in types:
        transformers_quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES = (*types, config_cls)


def after_next_load_adapter(model: Any, action: Callable[[], None]) -> None:
    """Run ``action()`` right after the next ``model.load_adapter(...)``, then restore the method.

    transformers' ``from_pretrained`` loads the adapters found beside a checkpoint with
    ``model.load_adapter`` *after* the quantizer's last hook, so a step that needs the adapters (the
    budget search) wraps that one call: an instance attribute shadows the class's method once.

    Upstream hook that would make this unnecessary: a quantizer hook that runs after the adapters of
    the checkpoint are loaded (e.g. ``_process_model_after_adapter_loading``).
    """
    _require(callable(getattr(type(model), "load_adapter", None)), "PreTrainedModel.load_adapter")
    original = model.load_adapter

    def load_adapter_then_act(*args, **kwargs):
        del model.load_adapter  # back to the class's method, whatever happens next
        info = original(*args, **kwargs)
        action()
        return info

    model.load_adapter = load_adapter_then_act


def bind_push_to_hub(model: Any, push: Callable[..., Any]) -> None:
    """Make ``model.push_to_hub(...)`` call ``push(model, ...)`` (the QFA push writes its own model card).

    Upstream hook that would make this unnecessary: the quantizer choosing the model card
    (``HfQuantizer.create_model_card``) or ``push_to_hub`` keeping an existing ``README.md``.
    """
    _require(callable(getattr(type(model), "push_to_hub", None)), "PreTrainedModel.push_to_hub")
    model.push_to_hub = MethodType(push, model)


def bind_staged_save_pretrained(model: Any, staged_folder: Callable[..., Any]) -> None:
    """Make ``model.save_pretrained(folder, ...)`` write into ``staged_folder(folder, what)`` (a staging folder
    swapped in by a rename), so a kill mid-save leaves the old folder or the new one. A push to the Hub
    (``push_to_hub=True``) goes through unchanged.

    Upstream hook that would make this unnecessary: ``save_pretrained`` writing atomically itself
    (into a temporary folder beside the target, renamed at the end).
    """
    original = getattr(type(model), "save_pretrained", None)
    _require(callable(original), "PreTrainedModel.save_pretrained")

    def save_pretrained(self, save_directory, *args, **kwargs):
        if kwargs.get("push_to_hub"):
            return original(self, save_directory, *args, **kwargs)
        with staged_folder(save_directory, "save_pretrained folder") as staging:
            return original(self, staging, *args, **kwargs)

    save_pretrained.__doc__ = original.__doc__
    model.save_pretrained = MethodType(save_pretrained, model)


def forget_adapter_loading(model: Any) -> None:
    """Drop what transformers' ``load_adapter`` left on a model whose adapters are gone (merged or stripped).

    Besides ``peft_config`` and its flag ``_hf_peft_config_loaded``, ``load_adapter`` replaces the
    model's recorded load-time key conversions (``_weight_conversions``) by the adapter's, which add
    a ``base_model.model.`` prefix; ``save_pretrained`` reverts them, so a model saved with them left
    in place writes every weight under the wrong name. ``None`` is what a model built in code has:
    transformers then uses the architecture's default conversions.

    Upstream hook that would make this unnecessary: a public ``unload_adapter()`` that also
    restores the weight conversions (``delete_adapter`` keeps them).
    """
    _require(
        hasattr(type(model), "_hf_peft_config_loaded"), "PreTrainedModel._hf_peft_config_loaded (the PEFT integration)"
    )
    if hasattr(model, "peft_config"):
        del model.peft_config
    model._hf_peft_config_loaded = False
    if getattr(model, "_weight_conversions", None) is not None:
        model._weight_conversions = None


def mark_quantized(model: Any, quantization_config: Any) -> None:
    """Give a model quantized in place the attributes ``from_pretrained`` sets on a quantized model:
    ``config.quantization_config``, ``hf_quantizer`` (from transformers' registry, by the config's
    ``quant_method``), ``is_quantized`` and ``quantization_method``; ``save_pretrained`` reads them.

    Upstream hook that would make this unnecessary: a public way to attach a quantizer to a model
    after loading (transformers sets these only inside ``from_pretrained``).
    """
    _require(callable(getattr(AutoHfQuantizer, "from_config", None)), "AutoHfQuantizer.from_config")
    model.config.quantization_config = quantization_config
    model.hf_quantizer = AutoHfQuantizer.from_config(quantization_config, pre_quantized=True)
    model.is_quantized = True
    model.quantization_method = quantization_config.quant_method


def ignore_unexpected_keys(model: Any, patterns: Iterable[str]) -> None:
    """Tell transformers' loader not to report checkpoint keys matching ``patterns`` as unexpected.

    Upstream hook that would make this unnecessary: a quantizer-level list of ignored keys
    (``HfQuantizer`` has none; the model class attribute ``_keys_to_ignore_on_load_unexpected`` is
    the only switch).
    """
    ignored = set(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
    model._keys_to_ignore_on_load_unexpected = ignored | set(patterns)


__all__ = [
    "SUPPORTED_TRANSFORMERS",
    "accept_loading_attributes",
    "after_next_load_adapter",
    "bind_push_to_hub",
    "bind_staged_save_pretrained",
    "forget_adapter_loading",
    "ignore_unexpected_keys",
    "mark_quantized",
]
