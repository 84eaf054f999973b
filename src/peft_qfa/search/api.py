"""``search_subnet``: the one-call search (space, evaluator and strategy from plain arguments)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..supernet.budget import Budget, feasible_budgets
from ..supernet.space import SearchSpace
from ..supernet.subnet import search_space
from ..validate import token_ids_in_vocab
from .evaluators import make_evaluator
from .result import SearchResult
from .strategies import DEFAULT_STRATEGY, SearchStrategy, make_strategy

EVALUATOR_OPTIONS = (
    "seq_len",
    "max_tokens",
    "batch_size",
    "max_examples",
    "higher_is_better",
    "weight_cache_bytes",
)
"""Keyword arguments of :func:`search_subnet` that configure the evaluator; the rest go to the strategy."""


def load_tokenizer(tokenizer: Any, model: nn.Module) -> Any:
    """``tokenizer`` itself, loaded from a path, or the tokenizer saved beside ``model`` (``None`` if none)."""
    if tokenizer is not None and not isinstance(tokenizer, str):
        return tokenizer
    source = (
        tokenizer
        or getattr(model, "name_or_path", None)
        or getattr(getattr(model, "config", None), "name_or_path", None)
    )
    if not source:
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        if tokenizer is not None:
            raise ValueError(f"Subnet search: could not load the tokenizer `{tokenizer}` ({err}).") from err
        return None


def _needs_tokenizer(eval_data: Any) -> bool:
    """Texts and multiple-choice tasks need one; token ids, callables and evaluators do not."""
    if isinstance(eval_data, (str, Mapping)):
        return True
    return (
        isinstance(eval_data, (list, tuple))
        and bool(eval_data)
        and all(isinstance(t, str) for t in eval_data)
    )


def search_subnet(
    model: nn.Module,
    budget,
    eval_data: Any = None,
    *,
    tokenizer: Any = None,
    strategy: str | SearchStrategy = DEFAULT_STRATEGY,
    granularity: str | None = None,
    **options: Any,
) -> SearchResult:
    """Search a QFA supernet for the best subnet under ``budget``; forward passes only, no training.

    Args:
        model (`nn.Module`): a supernet, bare or with QFA adapters (its subnet is restored afterwards).
        budget: average bits (``3.0``, ``"3.0bits"``), bytes of the materialized model
            (``"2.5GB"``, ``"800MB"``) or a list of budgets searched together.
        eval_data: texts or token ids (held-out loss), a BIG-bench-style task dict or ``.json``
            path (accuracy), a callable ``f(model) -> float`` (pass ``higher_is_better``), or an
            :class:`~peft_qfa.search.evaluators.Evaluator`.
        tokenizer (*optional*): for texts and tasks; defaults to the tokenizer saved beside the model.
        strategy (`str` or `SearchStrategy`, *optional*, defaults to `"sensitivity-knapsack"`):
            ours, or ``"two-stage"`` (the paper's).
        granularity (`str`, *optional*): ``"block"`` or ``"layer"``; defaults to the supernet's.
        **options: evaluator settings (``seq_len``, ``max_tokens``, ``batch_size``, ``max_examples``,
            ``higher_is_better``) and the strategy's own (``seed``, ``n_random``, ``generations``, ...).

    Returns:
        `SearchResult`: best subnet per budget, its score, evaluations, time and Pareto front.

    Example:

    ```python
    >>> result = peft_qfa.search_subnet(peft_model, [2.5, 3.0], eval_data=held_out_texts, tokenizer=tok)
    >>> packed = peft_qfa.materialize(peft_model, result.best(3.0).subnet)
    ```
    """
    space = search_space(model, granularity)
    budgets = feasible_budgets(space, budget)  # parsed and checked once, here where they enter
    return search_in_space(model, space, budgets, eval_data, tokenizer=tokenizer, strategy=strategy, **options)


def search_in_space(
    model: nn.Module,
    space: SearchSpace,
    budgets: Sequence[Budget],
    eval_data: Any = None,
    *,
    tokenizer: Any = None,
    strategy: str | SearchStrategy = DEFAULT_STRATEGY,
    **options: Any,
) -> SearchResult:
    """:func:`search_subnet` below its entry: ``space`` is built and ``budgets`` are parsed and checked
    against it by the caller (``from_pretrained(..., budget=...)`` does both before the adapters load)."""
    evaluator_options = {k: options.pop(k) for k in EVALUATOR_OPTIONS if k in options}
    if tokenizer is None and _needs_tokenizer(eval_data):
        tokenizer = load_tokenizer(None, model)
    elif isinstance(tokenizer, str):
        tokenizer = load_tokenizer(tokenizer, model)
    evaluator = make_evaluator(eval_data, tokenizer, **evaluator_options)
    if getattr(evaluator, "batches", None) is not None:  # token ids: checked here, not as an IndexError in torch
        token_ids_in_vocab("eval_data", evaluator.batches, model.get_input_embeddings().num_embeddings)
    return make_strategy(strategy, **options).run(model, space, list(budgets), evaluator)


__all__ = ["EVALUATOR_OPTIONS", "load_tokenizer", "search_in_space", "search_subnet"]
