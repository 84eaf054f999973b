"""A multiple-choice knapsack over groups: one bit-width per group, the least summed sensitivity within a budget."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def knapsack(
    groups: Sequence[str],
    options: Mapping[str, Mapping[int, tuple[float, float]]],
    capacity: float,
    n_solutions: int = 1,
    max_states: int = 4096,
    tolerance: float = 0.0,
) -> list[dict[str, int]]:
    """Multiple-choice knapsack: one bit-width per group, summed cost ``<= capacity``, least summed loss.

    ``options[group][bits] = (cost, loss)``. Solved exactly by dynamic programming over the Pareto
    front of (cost, loss) partial assignments, with back-pointers instead of copied assignments; if
    the front outgrows ``max_states`` it is thinned to the best state per cost bucket. Returns up to
    ``n_solutions`` assignments from the final front, least loss first (the runners-up are slightly
    cheaper alternatives, useful seeds for a refinement).
    """
    front: list[tuple[float, float, int, int]] = [(0.0, 0.0, -1, -1)]  # (cost, loss, parent, bits)
    history: list[list[tuple[float, float, int, int]]] = []
    for group in groups:
        extended = [
            (cost + c, loss + lo, parent, bits)
            for parent, (cost, loss, _, _) in enumerate(front)
            for bits, (c, lo) in options[group].items()
            if cost + c <= capacity + tolerance
        ]
        extended.sort(key=lambda s: (s[0], s[1]))
        pruned, best_loss = [], math.inf
        for state in extended:
            if state[1] < best_loss:
                pruned.append(state)
                best_loss = state[1]
        if len(pruned) > max_states:
            width = (pruned[-1][0] - pruned[0][0]) / max_states or 1.0
            buckets: dict[int, tuple[float, float, int, int]] = {}
            for state in pruned:
                bucket = int((state[0] - pruned[0][0]) / width)
                if bucket not in buckets or state[1] < buckets[bucket][1]:
                    buckets[bucket] = state
            pruned = sorted(buckets.values())
        history.append(pruned)
        front = pruned
    solutions = []
    for index in sorted(range(len(front)), key=lambda i: front[i][1])[:n_solutions]:
        assignment: dict[str, int] = {}
        for depth in range(len(groups) - 1, -1, -1):
            _, _, parent, bits = history[depth][index]
            assignment[groups[depth]] = bits
            index = parent
        solutions.append(assignment)
    return solutions


__all__ = ["knapsack"]
