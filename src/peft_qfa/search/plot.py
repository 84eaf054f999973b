"""``plot_pareto``: cost against score of every evaluated subnet, the Pareto front and the chosen ones, as a PNG."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from ..supernet.budget import Budget
from .result import SearchResult


def _series(source: SearchResult | Mapping, kind: str):
    """(all points, front points, chosen points, metric) from a result or a saved ``selection`` dict."""
    if isinstance(source, SearchResult):
        measure = Budget(kind, 0.0).measure
        points = [(measure(e.cost), e.score) for e in source.evaluations]
        front = [(measure(e.cost), e.score) for e in source.pareto_front(kind)]
        chosen = [(measure(c.cost), c.score, str(c.budget)) for c in source.choices]
        return points, front, chosen, source.metric
    key = "avg_bits" if kind == "bits" else "bytes"
    front = [(p[key], p["score"]) for p in source.get("pareto_front", [])]
    chosen = [(source[key], source["score"], source.get("budget", ""))]
    return front, front, chosen, source.get("metric", "score")


def plot_pareto(
    source: SearchResult | Mapping,
    path: str | os.PathLike,
    kind: str = "bits",
    title: str | None = None,
    others: Sequence[tuple[str, SearchResult]] = (),
) -> str:
    """Draw the search's evaluations, Pareto front and chosen subnets to ``path`` (PNG, Agg backend).

    Args:
        source: a :class:`SearchResult`, or the ``selection`` dict a materialized model keeps.
        path: where to write the PNG.
        kind (`str`): x axis, ``"bits"`` (average bits) or ``"bytes"`` (materialized size, MB).
        title (`str`, *optional*).
        others: more ``(label, SearchResult)`` pairs drawn on the same axes (to compare strategies).

    Returns:
        `str`: ``path``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    scale = 1.0 if kind == "bits" else 1e-6
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    metric = "score"
    colours = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple"]
    for i, (label, result) in enumerate([("", source), *others]):
        points, front, chosen, metric = _series(result, kind)
        colour = colours[i % len(colours)]
        name = label or (result.strategy if isinstance(result, SearchResult) else "search")
        if len(points) > len(front):
            ax.scatter([x * scale for x, _ in points], [y for _, y in points], s=10, alpha=0.3, color=colour)
        ax.plot(
            [x * scale for x, _ in front],
            [y for _, y in front],
            "-o",
            ms=3,
            color=colour,
            label=f"{name}: Pareto front",
        )
        ax.scatter(
            [x * scale for x, _, _ in chosen],
            [y for _, y, _ in chosen],
            marker="*",
            s=140,
            color=colour,
            edgecolor="black",
            zorder=5,
            label=f"{name}: chosen",
        )
    ax.set_xlabel("average bits" if kind == "bits" else "materialized size (MB)")
    ax.set_ylabel(metric)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


__all__ = ["plot_pareto"]
