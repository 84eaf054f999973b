"""Loading with a budget: ``from_pretrained(supernet, quantization_config=QFAQuantizationConfig(budget=...))``.

The ``"qfa"`` quantizer calls in here for two kinds of saved checkpoint:

* a **materialized subnet** (its config carries ``layer_bits``): the targets become empty
  :class:`QFAPackedLinear` layers of their own bit-width before the weights are read
  (:func:`replace_with_packed_linear`);
* a **supernet loaded with a bit or byte budget**: once the supernet *and its adapters* are
  loaded, the subnet is searched and materialized in place (:func:`apply_search_budget`).

Where the adapters come from: a supernet folder holds the supernet (``config.json``,
``model.safetensors``) and its QFA adapters (``adapter_config.json``,
``adapter_model.safetensors``) side by side, which is what ``save_pretrained`` of the supernet and
of its ``PeftModel`` into one folder gives. transformers itself loads such adapters with
``model.load_adapter`` *after* the quantizer's last hook, so the search is deferred until that call
has returned (a one-shot wrapper around the model's ``load_adapter``); the adapters are merged
and gone before ``from_pretrained`` returns.

Where the search's data come from: ``QFAQuantizationConfig(search_data=...)`` (texts, token ids,
a BIG-bench-style task or a callable), else the token ids saved beside the supernet
(:mod:`peft_qfa.search.saved_data`), plus ``search_options`` (strategy and evaluator settings,
``require_adapters``, ``adapter_name``). Both are load-time inputs and are never written to
``config.json``; :func:`from_pretrained` is the short form that fills them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..search.api import search_subnet
from ..search.budget import Budget, check_feasible
from ..search.saved_data import SEARCH_DATA_NAME, find_search_data
from ..supernet.config import QFAQuantizationConfig
from ..supernet.integration import find_qfa_targets
from ..supernet.layer import find_bit_layers
from ..supernet.subnet import search_space
from ..validate import model_source
from .materialize import materialize_in_place
from .packed_layer import QFAPackedLinear

ADAPTER_CONFIG_NAME = "adapter_config.json"


def replace_with_packed_linear(
    model: nn.Module,
    config: QFAQuantizationConfig,
    dtype: torch.dtype | None = None,
    keep_in_fp32_modules: Iterable[str] | None = None,
) -> list[str]:
    """Swap every target linear for an empty ``QFAPackedLinear`` of its ``layer_bits`` (meta device)."""
    targets = find_qfa_targets(model, config, keep_in_fp32_modules)
    missing = sorted(set(targets) - set(config.layer_bits))
    unknown = sorted(set(config.layer_bits) - set(targets))
    if missing or unknown:
        raise ValueError(
            f"This materialized QFA checkpoint does not fit {type(model).__name__}: `layer_bits` lacks "
            f"{missing[:3]} and names unknown layers {unknown[:3]}. Was config.json edited by hand?"
        )
    for name, linear in targets.items():
        model.set_submodule(
            name,
            QFAPackedLinear(
                linear.in_features,
                linear.out_features,
                config.layer_bits[name],
                config.group_size,
                bias=linear.bias is not None,
                dtype=dtype if isinstance(dtype, torch.dtype) else linear.weight.dtype,
                device="meta",
            ),
        )
    return list(targets)


def checkpoint_folder(checkpoint_files: Sequence[str] | None) -> str | None:
    """The local folder (a Hub snapshot for a repo id) the checkpoint was read from."""
    return os.path.dirname(checkpoint_files[0]) if checkpoint_files else None


def _has_qfa_adapters(model: nn.Module) -> bool:
    from ..tuner import QFAAdapterLayer

    return any(isinstance(m, QFAAdapterLayer) for m in model.modules())


def _search_and_materialize(model: nn.Module, config: QFAQuantizationConfig, search_data: Any) -> None:
    options = dict(config.search_options or {})
    options.pop("require_adapters", None)
    adapter_name = options.pop("adapter_name", None)
    budget = Budget.parse(config.budget)
    result = search_subnet(model, budget, search_data, tokenizer=config.tokenizer, **options)
    source = getattr(model, "name_or_path", None)
    materialize_in_place(
        model, result.subnet, adapter_name=adapter_name, selection=result.selection(budget, source=source)
    )
    model.qfa_search_result = result


def _after_next_load_adapter(model: nn.Module, action) -> None:
    """Run ``action()`` right after the next ``model.load_adapter(...)`` call (transformers makes it
    when the checkpoint folder holds ``adapter_config.json``), then restore the method."""
    original = model.load_adapter

    def load_adapter_then_search(*args, **kwargs):
        del model.load_adapter  # back to the class's method, whatever happens next
        info = original(*args, **kwargs)
        action()
        return info

    model.load_adapter = load_adapter_then_search


def apply_search_budget(model: nn.Module, config: QFAQuantizationConfig, checkpoint_dir: str | None) -> None:
    """Search and materialize the subnet for a bit or byte ``config.budget`` of a freshly loaded supernet.

    Fails fast, before any adapter is read, on a budget outside the supernet's range, on missing
    search data, and on a folder without adapters (unless ``search_options["require_adapters"]``
    is False, which searches the bare supernet).
    """
    budget = Budget.parse(config.budget)
    check_feasible(search_space(model), budget)
    search_data = config.search_data
    if search_data is None:  # the user's config is left as given: it may load another supernet next
        search_data = find_search_data(model, checkpoint_dir)  # saved beside the supernet, if any
    if search_data is None:
        raise ValueError(
            f"QFAQuantizationConfig(budget={config.budget!r}) searches a subnet, which needs data to score subnets "
            "on: pass `search_data=` (texts or token ids for held-out loss, a BIG-bench-style task, or a callable "
            "f(model) -> float with search_options={'higher_is_better': ...}), or use "
            "`peft_qfa.from_pretrained(path, budget=..., eval_data=...)`. (A supernet saved with "
            f"`save_supernet(..., search_data=ids)` or by `peft-qfa train` carries its own in {SEARCH_DATA_NAME}; "
            "this one has none.)"
        )
    require_adapters = (config.search_options or {}).get("require_adapters", True)
    if _has_qfa_adapters(model):
        _search_and_materialize(model, config, search_data)
    elif checkpoint_dir is not None and os.path.isfile(os.path.join(checkpoint_dir, ADAPTER_CONFIG_NAME)):
        _after_next_load_adapter(model, lambda: _search_and_materialize(model, config, search_data))
    elif require_adapters:
        raise ValueError(
            f"The supernet folder `{checkpoint_dir or getattr(model, 'name_or_path', '?')}` holds no QFA adapters "
            f"({ADAPTER_CONFIG_NAME} + adapter_model.safetensors), so a budget would select from the untrained "
            "supernet. Save the trained adapters into the same folder (`peft_model.save_pretrained(folder)` next to "
            "the supernet), or pass search_options={'require_adapters': False} to search the bare supernet."
        )
    else:
        _search_and_materialize(model, config, search_data)


def from_pretrained(
    path: str | os.PathLike,
    budget: float | str,
    eval_data: Any = None,
    *,
    tokenizer: Any = None,
    strategy: str | None = None,
    search_options: Mapping[str, Any] | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Load a saved supernet (a folder or Hub repo) and return its best subnet under ``budget``, materialized.

    The short form of ``AutoModelForCausalLM.from_pretrained(path,
    quantization_config=QFAQuantizationConfig(budget=budget, search_data=eval_data, ...))``.

    Args:
        path: the supernet folder (supernet + adapters) or Hub repo id.
        budget: average bits (``3.0``, ``"3.0bits"``) or bytes of the result (``"2.5GB"``).
        eval_data: what subnets are scored on (see :func:`peft_qfa.search_subnet`).
        tokenizer (*optional*): for texts or tasks; defaults to the one saved in ``path``.
        strategy (`str`, *optional*): ``"sensitivity-knapsack"`` (default) or ``"two-stage"``.
        search_options (`dict`, *optional*): strategy and evaluator settings, ``require_adapters``
            (default True), ``adapter_name``.
        **model_kwargs: passed to ``AutoModelForCausalLM.from_pretrained`` (``dtype``, ``revision``, ...).

    Returns:
        The materialized model (``QFAPackedLinear`` layers); ``model.qfa_search_result`` holds the
        :class:`~peft_qfa.search.SearchResult`.
    """
    from transformers import AutoModelForCausalLM

    if isinstance(budget, (list, tuple, Mapping)):
        raise TypeError(
            "peft_qfa.from_pretrained: `budget` must be one bit or byte budget (a list gives several models: use "
            "`peft_qfa.search_subnet` then `peft_qfa.materialize` for each); got "
            f"{type(budget).__name__}."
        )
    Budget.parse(budget)  # a malformed budget fails before anything is loaded
    path = model_source("path", path)  # a missing folder or a truncated weight file, too
    options = dict(search_options or {})
    if strategy is not None:
        options["strategy"] = strategy
    config = QFAQuantizationConfig(
        budget=budget, search_data=eval_data, search_options=options, tokenizer=tokenizer
    )
    with warnings.catch_warnings():
        # transformers warns that a saved checkpoint's own config wins except for the loading attributes: here
        # overriding exactly those (budget, search data) is the point.
        warnings.filterwarnings("ignore", message="You passed `quantization_config`", category=UserWarning)
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, **model_kwargs)
    if any(not isinstance(m, QFAPackedLinear) for m in find_bit_layers(model).values()):
        raise RuntimeError(
            f"peft_qfa.from_pretrained: `{path}` was loaded but not materialized; is it a saved QFA supernet?"
        )
    return model


__all__ = [
    "ADAPTER_CONFIG_NAME",
    "apply_search_budget",
    "checkpoint_folder",
    "from_pretrained",
    "replace_with_packed_linear",
]
