"""Evaluators: the score a search ranks subnets by, from forward passes only.

Three kinds, one interface (``evaluate(model, subnet) -> float``):

* :class:`LossEvaluator`: mean next-token negative log-likelihood on held-out text (token ids,
  or strings with a tokenizer); lower is better, ``exp(loss)`` is the perplexity;
* :class:`MultipleChoiceEvaluator`: accuracy on a BIG-bench-style task, each choice scored by the
  summed log-likelihood of its tokens after the input; higher is better;
* :class:`CallableEvaluator`: any ``f(model) -> float`` with an explicit ``higher_is_better``.

Scores are cached per subnet (key: its tuple of bits), so a search that proposes the same subnet
twice pays for one forward pass; ``n_evaluations`` counts the real ones.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..supernet.space import Subnet
from ..supernet.subnet import use_subnet
from ..windows import cut_windows, window_bos
from .weight_cache import DEFAULT_MAX_BYTES, DequantizedWeightCache


class Evaluator:
    """Base class: subclasses implement :meth:`score` (one forward-only evaluation of ``model`` as it is).

    Args:
        weight_cache_bytes (`int`, *optional*): memory for float copies of the supernet's weights,
            kept across evaluations (see :mod:`.weight_cache`); defaults to 4 GiB for a model on the
            CPU, where dequantizing costs as much as the forward pass, and 0 (off) on a GPU, whose
            kernels dequantize on the fly.
    """

    name: str = "score"
    higher_is_better: bool = True

    def __init__(self, weight_cache_bytes: int | None = None):
        self.cache: dict[tuple[int, ...], float] = {}
        self.n_evaluations = 0
        self.weight_cache_bytes = weight_cache_bytes
        self._weights: DequantizedWeightCache | None = None

    def _weight_cache(self, model: nn.Module) -> DequantizedWeightCache:
        if self._weights is None:
            size = self.weight_cache_bytes
            if size is None:
                size = DEFAULT_MAX_BYTES if _model_device(model).type == "cpu" else 0
            self._weights = DequantizedWeightCache(size)
        return self._weights

    def release(self) -> None:
        """Free the cached float weights (the scores stay cached)."""
        if self._weights is not None:
            self._weights.clear()
        self._weights = None

    def score(self, model: nn.Module) -> float:
        raise NotImplementedError

    def evaluate(self, model: nn.Module, subnet: Subnet) -> float:
        """The score of ``model`` running ``subnet`` (cached; the model's previous subnet is restored)."""
        key = tuple(subnet.values())
        if key in self.cache:
            return self.cache[key]
        was_training = model.training
        model.eval()
        try:
            with use_subnet(model, subnet), self._weight_cache(model).active(model), torch.no_grad():
                value = float(self.score(model))
        finally:
            model.train(was_training)
        if not math.isfinite(value):
            raise ValueError(
                f"{type(self).__name__} returned a non-finite score {value} for subnet {subnet!r}."
            )
        self.n_evaluations += 1
        self.cache[key] = value
        return value

    def head(self, fraction: float) -> Evaluator | None:
        """A cheaper evaluator on the first ``fraction`` of this one's data, for work that only ranks
        (sensitivity probes); ``None`` when this evaluator cannot be cut (the default) or the cut would
        keep everything."""
        return None

    def better(self, a: float, b: float) -> bool:
        """Whether score ``a`` is strictly better than score ``b``."""
        return a > b if self.higher_is_better else a < b

    def quality(self, score: float) -> float:
        """``score`` oriented so that larger is always better (for correlations and sensitivities)."""
        return score if self.higher_is_better else -score

    def describe(self, score: float) -> str:
        return f"{self.name} {score:.4f}"

    def __repr__(self) -> str:
        direction = "higher" if self.higher_is_better else "lower"
        return f"{type(self).__name__}({self.name}, {direction} is better)"


# ---------------------------------------------------------------------------------------------- helpers
def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        if tensor.device.type != "meta":
            return tensor.device
    return torch.device("cpu")


def _tokenize(tokenizer: Any, text: str) -> list[int]:
    # verbose=False: long texts exceed model_max_length on purpose; they are cut into windows.
    return list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])


def _is_texts(data: Any) -> bool:
    return isinstance(data, str) or (
        isinstance(data, Sequence) and bool(data) and all(isinstance(t, str) for t in data)
    )


# ---------------------------------------------------------------------------------------------- loss
class LossEvaluator(Evaluator):
    """Held-out mean next-token loss over non-overlapping windows (lower is better).

    Args:
        data: a string or list of strings (needs ``tokenizer``), a 1-D sequence/tensor of token ids
            (one stream, cut into windows) or a 2-D ``LongTensor [n, seq]`` (used as given).
        tokenizer (*optional*): turns texts into ids; special tokens are not added to the texts, but every
            window starts with the tokenizer's BOS when the tokenizer adds one by default
            (:mod:`peft_qfa.windows`).
        add_bos (`bool`, *optional*): override the tokenizer's BOS default for texts and 1-D ids (``True``
            needs ``tokenizer``); a 2-D tensor is always used as given.
        seq_len (`int`, *optional*, defaults to 256): tokens per window.
        max_tokens (`int`, *optional*): keep only the first ``max_tokens`` tokens of the stream.
        batch_size (`int`, *optional*, defaults to 8): windows per forward pass.
        weight_cache_bytes (`int`, *optional*): see :class:`Evaluator`.
    """

    name = "loss"
    higher_is_better = False

    def __init__(
        self,
        data: Any,
        tokenizer: Any = None,
        seq_len: int = 256,
        max_tokens: int | None = None,
        batch_size: int = 8,
        weight_cache_bytes: int | None = None,
        add_bos: bool | None = None,
    ):
        super().__init__(weight_cache_bytes)
        if seq_len < 2 or batch_size < 1 or (max_tokens is not None and max_tokens < 2):
            raise ValueError(
                f"LossEvaluator: need seq_len >= 2, batch_size >= 1 and max_tokens >= 2 (or None); got "
                f"seq_len={seq_len}, batch_size={batch_size}, max_tokens={max_tokens}."
            )
        self.batches = self._batches(data, tokenizer, seq_len, max_tokens, batch_size, window_bos(tokenizer, add_bos))
        self.n_tokens = sum(b.numel() for b in self.batches)
        self.batch_size = batch_size

    def head(self, fraction: float) -> LossEvaluator | None:
        """The loss on this evaluator's first whole windows that hold at least ``fraction`` of its tokens."""
        if not 0 < fraction <= 1:
            raise ValueError(f"LossEvaluator.head: fraction must be in (0, 1], got {fraction}.")
        kept, tokens = [], 0
        for window in (w for batch in self.batches for w in batch):
            if tokens >= fraction * self.n_tokens:
                break
            kept.append(window)
            tokens += window.numel()
        if tokens >= self.n_tokens:  # only a shorter last window could follow a full one: all were kept
            return None
        return LossEvaluator(
            torch.stack(kept), batch_size=self.batch_size, weight_cache_bytes=self.weight_cache_bytes
        )

    @staticmethod
    def _batches(data, tokenizer, seq_len, max_tokens, batch_size, bos) -> list[torch.Tensor]:
        if isinstance(data, torch.Tensor) and data.dim() == 2:
            if data.is_floating_point() or data.shape[1] < 2:
                raise ValueError(
                    f"LossEvaluator: a 2-D tensor must hold integer token ids [n, seq>=2], got "
                    f"{data.dtype} {tuple(data.shape)}."
                )
            windows = data.long()
            if max_tokens is not None:
                windows = windows[: max(1, max_tokens // windows.shape[1])]
            return list(windows.split(batch_size))
        if _is_texts(data):
            if tokenizer is None:
                raise ValueError(
                    "LossEvaluator: the evaluation data are texts, so a tokenizer is needed; pass `tokenizer=` "
                    "(or token ids instead of texts)."
                )
            ids = [
                i for text in ([data] if isinstance(data, str) else data) for i in _tokenize(tokenizer, text)
            ]
        elif isinstance(data, torch.Tensor) or (isinstance(data, Sequence) and not isinstance(data, str)):
            ids = torch.as_tensor(data).flatten().tolist() if len(data) else []
            if any(isinstance(i, float) for i in ids):
                raise TypeError("LossEvaluator: token ids must be integers, got floats.")
        else:
            raise TypeError(
                "LossEvaluator: `data` must be a string, a list of strings, token ids (a list or 1-D tensor) or a "
                f"LongTensor [n, seq]; got {type(data).__name__}."
            )
        stream = torch.tensor(ids[:max_tokens] if max_tokens else ids, dtype=torch.long)
        if stream.numel() < 2:
            raise ValueError(
                f"LossEvaluator: the evaluation data hold {stream.numel()} token(s); at least 2 are needed."
            )
        windows = cut_windows(stream, seq_len, bos, keep_tail=True)  # the tail is scored as one shorter window
        full = [w for w in windows if w.numel() == seq_len]
        batches = list(torch.stack(full).split(batch_size)) if full else []
        batches += [w.unsqueeze(0) for w in windows[len(full) :]]
        return batches

    def score(self, model: nn.Module) -> float:
        device = _model_device(model)
        total_nll, total_tokens = 0.0, 0
        for batch in self.batches:
            batch = batch.to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()
            targets = batch[:, 1:]
            total_nll += nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
            ).item()
            total_tokens += targets.numel()
        return total_nll / total_tokens

    def describe(self, score: float) -> str:
        return f"loss {score:.4f} (perplexity {math.exp(score):.3f})"


# ---------------------------------------------------------------------------------------------- multiple choice
def load_task(task: Mapping | str | os.PathLike) -> dict:
    """A BIG-bench-style task from a dict or a JSON file, validated."""
    if isinstance(task, (str, os.PathLike)):
        path = Path(task)
        if not path.is_file():
            raise FileNotFoundError(f"MultipleChoiceEvaluator: no task file at {path}.")
        task = json.loads(path.read_text(encoding="utf-8-sig"))
    examples = task.get("examples") if isinstance(task, Mapping) else None
    if not isinstance(examples, list) or not examples:
        raise ValueError(
            'MultipleChoiceEvaluator: a task must be {"examples": [{"input": ..., "target_scores": {choice: 0/1}}]} '
            "with at least one example."
        )
    for i, example in enumerate(examples):
        scores = example.get("target_scores") if isinstance(example, Mapping) else None
        if not isinstance(example.get("input") if isinstance(example, Mapping) else None, str) or not (
            isinstance(scores, Mapping) and len(scores) >= 2
        ):
            raise ValueError(
                f"MultipleChoiceEvaluator: example {i} needs a string `input` and `target_scores` with at least two "
                "choices."
            )
        if max(scores.values()) <= 0:
            raise ValueError(
                f"MultipleChoiceEvaluator: example {i} marks no choice as correct (all target_scores <= 0)."
            )
    return dict(task)


class MultipleChoiceEvaluator(Evaluator):
    """Accuracy on a BIG-bench-style multiple-choice task (higher is better).

    Each choice is scored by the summed log-likelihood of its tokens following the input (a space
    separates them unless the input already ends in whitespace); the prediction is the best-scored
    choice, correct when its target score is the example's highest.

    Args:
        task: ``{"examples": [{"input": ..., "target_scores": {choice: 0/1}}]}`` or a path to such a JSON file.
        tokenizer: the model's tokenizer.
        max_examples (`int`, *optional*): use only the first ``max_examples`` examples.
        batch_size (`int`, *optional*, defaults to 16): (input, choice) sequences per forward pass.
        weight_cache_bytes (`int`, *optional*): see :class:`Evaluator`.
    """

    name = "accuracy"
    higher_is_better = True

    def __init__(
        self,
        task: Mapping | str | os.PathLike,
        tokenizer: Any,
        max_examples: int | None = None,
        batch_size: int = 16,
        weight_cache_bytes: int | None = None,
        add_bos: bool | None = None,
    ):
        super().__init__(weight_cache_bytes)
        if tokenizer is None:
            raise ValueError("MultipleChoiceEvaluator: pass the model's `tokenizer=` to score the choices.")
        bos = window_bos(tokenizer, add_bos)
        examples = load_task(task)["examples"][:max_examples]
        self.batch_size = batch_size
        # one row per (example, choice): token ids and where the choice starts
        self.rows: list[tuple[list[int], int]] = []
        self.spans: list[tuple[int, int]] = []  # each example's rows
        self.correct: list[set[int]] = []
        for example in examples:
            prompt = ([bos] if bos is not None else []) + _tokenize(tokenizer, example["input"])
            if len(prompt) == (bos is not None):  # a choice's first token is predicted from the input's last one
                raise ValueError(f"MultipleChoiceEvaluator: the input {example['input']!r} tokenizes to no tokens.")
            separator = "" if example["input"][-1:].isspace() else " "
            scores = example["target_scores"]
            best = max(scores.values())
            start = len(self.rows)
            for choice in scores:
                self.rows.append((prompt + _tokenize(tokenizer, separator + choice), len(prompt)))
            self.spans.append((start, len(self.rows)))
            self.correct.append({start + j for j, s in enumerate(scores.values()) if s == best})
        self.n_examples = len(examples)

    def choice_loglikelihoods(self, model: nn.Module) -> torch.Tensor:
        device = _model_device(model)
        totals = torch.empty(len(self.rows))
        for first in range(0, len(self.rows), self.batch_size):
            rows = self.rows[first : first + self.batch_size]
            width = max(len(ids) for ids, _ in rows)
            ids = torch.zeros(len(rows), width, dtype=torch.long)
            mask = torch.zeros(len(rows), width, dtype=torch.long)
            for r, (seq, _) in enumerate(rows):  # right padding leaves every real position unchanged
                ids[r, : len(seq)] = torch.tensor(seq)
                mask[r, : len(seq)] = 1
            logprobs = torch.log_softmax(
                model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1
            )
            for r, (seq, start) in enumerate(rows):
                positions = torch.arange(start, len(seq))
                targets = torch.tensor(seq[start:])
                totals[first + r] = logprobs[r, positions - 1, targets].sum().cpu()
        return totals

    def score(self, model: nn.Module) -> float:
        totals = self.choice_loglikelihoods(model)
        hits = 0
        for (first, last), correct in zip(self.spans, self.correct, strict=True):
            hits += first + int(torch.argmax(totals[first:last])) in correct
        return hits / len(self.correct)

    def describe(self, score: float) -> str:
        return f"accuracy {score:.4f} ({round(score * len(self.correct))}/{len(self.correct)})"


# ---------------------------------------------------------------------------------------------- callable
class CallableEvaluator(Evaluator):
    """Any ``fn(model) -> float``; ``higher_is_better`` must be stated, since a loss and an accuracy
    look the same from outside."""

    def __init__(
        self,
        fn: Callable[[nn.Module], float],
        higher_is_better: bool,
        name: str | None = None,
        weight_cache_bytes: int | None = None,
    ):
        super().__init__(weight_cache_bytes)
        if not isinstance(higher_is_better, bool):
            raise ValueError(
                "CallableEvaluator: say whether higher scores are better: pass higher_is_better=True (an accuracy) "
                "or higher_is_better=False (a loss)."
            )
        self.fn = fn
        self.higher_is_better = higher_is_better
        self.name = name or getattr(fn, "__name__", "score")

    def score(self, model: nn.Module) -> float:
        return float(self.fn(model))


# ---------------------------------------------------------------------------------------------- dispatch
def make_evaluator(
    eval_data: Any,
    tokenizer: Any = None,
    higher_is_better: bool | None = None,
    **options: Any,
) -> Evaluator:
    """The evaluator for ``eval_data``.

    Args:
        eval_data: an :class:`Evaluator` (used as is); a callable ``f(model) -> float`` (then
            ``higher_is_better`` is required); a BIG-bench-style task dict or ``.json`` path
            (accuracy); texts or token ids (held-out loss).
        tokenizer (*optional*): for texts and multiple-choice tasks.
        higher_is_better (`bool`, *optional*): only for a callable.
        **options: passed to the evaluator's constructor (``seq_len``, ``max_tokens``,
            ``batch_size``, ``max_examples``).
    """
    if isinstance(eval_data, Evaluator):
        return eval_data
    if eval_data is None:
        raise ValueError(
            "A subnet search needs evaluation data: pass texts or token ids (held-out loss), a BIG-bench-style "
            "task (accuracy) or a callable f(model) -> float with higher_is_better."
        )
    is_task_path = isinstance(eval_data, (str, os.PathLike)) and str(eval_data).endswith(".json")
    if is_task_path or (isinstance(eval_data, Mapping) and "examples" in eval_data):
        return MultipleChoiceEvaluator(eval_data, tokenizer, **options)
    if callable(eval_data) and not isinstance(eval_data, torch.Tensor):
        if higher_is_better is None:
            raise ValueError(
                "CallableEvaluator: say whether higher scores are better: pass higher_is_better=True (an accuracy) "
                "or higher_is_better=False (a loss)."
            )
        return CallableEvaluator(eval_data, higher_is_better, **options)
    return LossEvaluator(eval_data, tokenizer, **options)


__all__ = [
    "CallableEvaluator",
    "Evaluator",
    "LossEvaluator",
    "MultipleChoiceEvaluator",
    "load_task",
    "make_evaluator",
]
