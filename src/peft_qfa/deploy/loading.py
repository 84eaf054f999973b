"""Loading with a budget: ``from_pretrained(supernet, quantization_config=QFAQuantizationConfig(budget=...))``.

The ``"qfa"`` quantizer (:mod:`peft_qfa.integrations.quantizer`) calls in here for a **supernet
loaded with a bit or byte budget**: once the supernet *and its adapters* are loaded, the subnet is
searched and materialized in place (:func:`apply_search_budget`).

Where the adapters come from: a supernet folder holds the supernet (``config.json``,
``model.safetensors``) and its QFA adapters (``adapter_config.json``,
``adapter_model.safetensors``) side by side, which is what ``save_pretrained`` of the supernet and
of its ``PeftModel`` into one folder gives. transformers itself loads such adapters with
``model.load_adapter`` *after* the quantizer's last hook, so the search is deferred until that call
has returned (:func:`peft_qfa._compat.after_next_load_adapter`); the adapters are merged
and gone before ``from_pretrained`` returns.

Where the search's data come from: ``QFAQuantizationConfig(search_data=...)`` (texts, token ids,
a BIG-bench-style task or a callable), else the token ids saved beside the supernet
(:mod:`peft_qfa.checkpoint.search_data`), plus ``search_options`` (strategy and evaluator settings,
``require_adapters``, ``adapter_name``). Both are load-time inputs and are never written to
``config.json``; :func:`from_pretrained` is the short form that fills them.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from typing import Any

from torch import nn

from .._compat import after_next_load_adapter
from ..checkpoint import (
    ADAPTER_CONFIG_NAME,
    SEARCH_DATA_NAME,
    find_search_data,
    has_adapter_files,
    has_qfa_adapters,
)
from ..search.api import search_in_space
from ..supernet.budget import Budget, check_feasible
from ..supernet.config import QFAQuantizationConfig
from ..supernet.layer import find_bit_layers
from ..supernet.packed_embedding import EMBEDDING_BITS, EMBEDDING_SEARCH
from ..supernet.packed_layer import QFAPackedLinear
from ..supernet.space import SearchSpace
from ..supernet.subnet import search_space
from ..validate import model_source
from .compact import embedding_rounded_to
from .materialize import materialize_in_place


def _set_embedding_bits(model: nn.Module, config: QFAQuantizationConfig, bits) -> None:
    """On the loader's config and on the model's (transformers copies the config before it builds the model)."""
    for target in {id(c): c for c in (config, getattr(model.config, "quantization_config", None))}.values():
        if isinstance(target, QFAQuantizationConfig):
            target.embedding_bits = bits


def _spaces_by_embedding(model: nn.Module, config: QFAQuantizationConfig) -> dict[int | None, SearchSpace]:
    """``{embedding bits: space}``: one space, or with ``embedding_bits="search"`` and a byte budget one per
    precision the budget can meet (float, 8, 4 bits), each costing the embedding as it would be stored.
    Raises the cost model's feasibility error when none can."""
    if config.embedding_bits != EMBEDDING_SEARCH or config.budget.kind != "bytes":
        if config.embedding_bits == EMBEDDING_SEARCH:
            _set_embedding_bits(model, config, None)  # an average-bits budget does not count the embedding
        space = search_space(model)
        check_feasible(space, config.budget)
        return {config.embedding_bits: space}
    spaces, error = {}, None
    for bits in (None, *sorted(EMBEDDING_BITS, reverse=True)):
        _set_embedding_bits(model, config, bits)  # the cost model reads the model's config
        space = search_space(model)
        try:
            check_feasible(space, config.budget)
        except ValueError as err:
            error = err
            continue
        spaces[bits] = space
    _set_embedding_bits(model, config, EMBEDDING_SEARCH)
    if not spaces:
        raise error
    return spaces


def _search_and_materialize(
    model: nn.Module, config: QFAQuantizationConfig, spaces: Mapping[int | None, SearchSpace], search_data: Any
) -> None:
    options = dict(config.search_options or {})
    options.pop("require_adapters", None)
    adapter_name = options.pop("adapter_name", None)
    best, scores = None, {}
    for bits, space in spaces.items():  # one search per embedding precision, scored as it will be stored
        with embedding_rounded_to(model, bits, config.group_size):
            result = search_in_space(model, space, [config.budget], search_data, tokenizer=config.tokenizer, **options)
        scores[str(bits or "float")] = result.score
        sign = 1.0 if result.higher_is_better else -1.0
        if best is None or sign * result.score > sign * best[2].score:
            best = (bits, space, result)
    bits, space, result = best
    _set_embedding_bits(model, config, bits)
    selection = result.selection(source=getattr(model, "name_or_path", None))
    if len(spaces) > 1:
        selection["embedding_bits"] = {"chosen": bits, "scores": scores}
    materialize_in_place(model, result.subnet, adapter_name=adapter_name, selection=selection, space=space)
    model.qfa_search_result = result


def apply_search_budget(model: nn.Module, config: QFAQuantizationConfig, checkpoint_dir: str | None) -> None:
    """Search and materialize the subnet for the bit or byte ``config.budget`` of a freshly loaded supernet.

    ``config.budget`` is the :class:`Budget` the config parsed; the space is built here, once, and
    passed down to the search and the materialization. Fails fast, before any adapter is read, on a
    budget outside the supernet's range, on missing search data, and on a folder without adapters
    (unless ``search_options["require_adapters"]`` is False, which searches the bare supernet).
    """
    budget: Budget = config.budget
    spaces = _spaces_by_embedding(model, config)
    search_data = config.search_data
    if search_data is None:  # the user's config is left as given: it may load another supernet next
        search_data = find_search_data(model, checkpoint_dir)  # saved beside the supernet, if any
    if search_data is None:
        raise ValueError(
            f"QFAQuantizationConfig(budget={str(budget)!r}) searches a subnet, which needs data to score subnets "
            "on: pass `search_data=` (texts or token ids for held-out loss, a BIG-bench-style task, or a callable "
            "f(model) -> float with search_options={'higher_is_better': ...}), or use "
            "`peft_qfa.from_pretrained(path, budget=..., eval_data=...)`. (A supernet saved with "
            f"`save_supernet(..., search_data=ids)` or by `peft-qfa train` carries its own in {SEARCH_DATA_NAME}; "
            "this one has none.)"
        )
    require_adapters = (config.search_options or {}).get("require_adapters", True)
    if has_qfa_adapters(model):
        _search_and_materialize(model, config, spaces, search_data)
    elif has_adapter_files(checkpoint_dir):
        after_next_load_adapter(model, lambda: _search_and_materialize(model, config, spaces, search_data))
    elif require_adapters:
        raise ValueError(
            f"The supernet folder `{checkpoint_dir or getattr(model, 'name_or_path', '?')}` holds no QFA adapters "
            f"({ADAPTER_CONFIG_NAME} + adapter_model.safetensors), so a budget would select from the untrained "
            "supernet. Save the trained adapters into the same folder (`peft_model.save_pretrained(folder)` next to "
            "the supernet), or pass search_options={'require_adapters': False} to search the bare supernet."
        )
    else:
        _search_and_materialize(model, config, spaces, search_data)


def from_pretrained(
    path: str | os.PathLike,
    budget: float | str,
    eval_data: Any = None,
    *,
    tokenizer: Any = None,
    strategy: str | None = None,
    search_options: Mapping[str, Any] | None = None,
    deploy_dtype: str | None = None,
    embedding_bits: int | str | None = None,
    **model_kwargs: Any,
) -> nn.Module:
    """Load a saved supernet (a folder or Hub repo) and return its best subnet under ``budget``, materialized.

    The short form of ``AutoModelForCausalLM.from_pretrained(path,
    quantization_config=QFAQuantizationConfig(budget=budget, search_data=eval_data, ...))``.

    Args:
        path: the supernet folder (supernet + adapters) or Hub repo id.
        budget: average bits (``3.0``, ``"3.0bits"``), bytes of the result (``"2.5GB"``) or a
            :class:`~peft_qfa.Budget`.
        eval_data: what subnets are scored on (see :func:`peft_qfa.search_subnet`).
        tokenizer (*optional*): for texts or tasks; defaults to the one saved in ``path``.
        strategy (`str`, *optional*): ``"sensitivity-knapsack"`` (default) or ``"two-stage"``.
        search_options (`dict`, *optional*): strategy and evaluator settings, ``require_adapters``
            (default True), ``adapter_name``.
        deploy_dtype (`str`, *optional*): how the result stores its float tensors (``"auto"``: 16 bits;
            ``"float32"``: exact); see :class:`~peft_qfa.QFAQuantizationConfig`.
        embedding_bits (`int` or `str`, *optional*): ``8`` / ``4`` packs the embedding and head; ``"search"``
            lets a byte budget choose (float, 8 or 4 bits) by the search's score.
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
    path = model_source("path", path)  # a missing folder or a truncated weight file fails before any load
    options = dict(search_options or {})
    if strategy is not None:
        options["strategy"] = strategy
    # the budget is parsed here, once (a malformed one fails before anything is loaded); the typed Budget
    # travels down through the config's loading attributes
    config = QFAQuantizationConfig(
        budget=Budget.parse(budget), search_data=eval_data, search_options=options, tokenizer=tokenizer,
        deploy_dtype=deploy_dtype, embedding_bits=embedding_bits,
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


__all__ = ["apply_search_budget", "from_pretrained"]
