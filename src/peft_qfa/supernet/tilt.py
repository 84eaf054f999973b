"""The maximum-entropy categorical over a group's bit-widths, written once for training and search.

Among all distributions over the candidate bit-widths with a given mean, ``p(b) ∝ exp(λ·b)``
assumes nothing else (uniform at ``λ = 0``, mass moving smoothly toward one end as ``|λ|`` grows).
The training sampler solves ``λ`` for a target mean bit-width per group
(:func:`max_entropy_distribution`); the search's budget sampler solves one ``λ`` shared by all
groups for a target expected cost (:class:`peft_qfa.search.sampling.BudgetSampler`). Both use
:func:`tilted_probabilities` and :func:`bisect_increasing`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache


def tilted_probabilities(bits: Sequence[int], tilt: float) -> list[float]:
    """``p(b) ∝ exp(tilt·b)`` over ``bits``, computed without overflow."""
    logits = [tilt * b for b in bits]
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    total = sum(weights)
    return [w / total for w in weights]


def bisect_increasing(f: Callable[[float], float], target: float, low: float, high: float, steps: int) -> float:
    """The ``x`` in ``[low, high]`` where the increasing ``f`` reaches ``target``, after ``steps`` halvings."""
    for _ in range(steps):
        mid = (low + high) / 2
        if f(mid) < target:
            low = mid
        else:
            high = mid
    return (low + high) / 2


@lru_cache(maxsize=4096)
def max_entropy_distribution(bits: tuple[int, ...], mean: float) -> tuple[float, ...]:
    """The maximum-entropy distribution over ``bits`` whose mean is ``mean``: ``p_b ∝ exp(λ·b)``.

    The paper fixes only the mean of each group's categorical; among all distributions with that
    mean this one assumes nothing else (it is uniform at the middle of the range and moves mass
    smoothly toward one end). ``λ`` is found by bisection: the tilted mean grows monotonically with
    ``λ``. A mean at or beyond an end of ``bits`` puts all mass on that end. Returned in the order
    of ``sorted(bits)``.
    """
    values = sorted(bits)
    if len(values) == 1 or mean <= values[0]:
        return tuple(float(v == values[0]) for v in values)
    if mean >= values[-1]:
        return tuple(float(v == values[-1]) for v in values)
    scale = values[-1] - values[0]  # λ per unit of the range keeps the bracket independent of the bits

    def mean_at(lam: float) -> float:
        return sum(p * v for p, v in zip(tilted_probabilities(values, lam / scale), values, strict=True))

    low, high = -1.0, 1.0
    while mean_at(low) > mean:
        low *= 2.0
    while mean_at(high) < mean:
        high *= 2.0
    lam = bisect_increasing(mean_at, mean, low, high, steps=200)
    return tuple(tilted_probabilities(values, lam / scale))


__all__ = ["bisect_increasing", "max_entropy_distribution", "tilted_probabilities"]
