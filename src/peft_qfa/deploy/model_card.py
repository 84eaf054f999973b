"""Model cards for a materialized subnet and for a supernet, rendered from ``model_cards/*.md``.

Every number on a card is read off the model: bits per group from ``peft_qfa.get_subnet`` (the
layers' real bit-widths, not what a search intended), sizes from the one cost model, the search
that chose the subnet from the ``selection`` its config records.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Mapping

from torch import nn

from ..checkpoint.card import _base_model, _front_matter, _size, _template, render_supernet_card
from ..supernet.config import qfa_config, unwrap_model
from ..supernet.subnet import get_subnet, search_space
from ..tuner import get_variant

PARETO_IMAGE = "pareto.png"


def _search_details(selection: Mapping) -> str:
    if "strategy" not in selection:
        return "The subnet was given explicitly (no search)."
    metric = selection["metric"]
    score = selection["score"]
    shown = f"{score:.4f}" + (f" (perplexity {math.exp(score):.3f})" if metric == "loss" else "")
    direction = "higher" if selection.get("higher_is_better") else "lower"
    return (
        f"Strategy `{selection['strategy']}`, scored by **{metric}** ({direction} is better) on the search data: "
        f"**{shown}** for this subnet, after {selection['n_evaluations']} subnet evaluations "
        f"({selection['seconds']:.0f} s, forward passes only)."
    )


def _storage(config) -> str:
    dtype = config.deploy_dtype or "auto"
    embedding = f"packed at {config.embedding_bits} bits" if config.embedding_bits else f"in {dtype}"
    head = " (the head reads its codes)" if config.tied_head else ""
    return f"scales, zero points, norms in {dtype}; token embedding {embedding}{head}"


def render_materialized_card(
    model: nn.Module, repo_id: str, pareto_image: str | None = None, tags: list[str] | None = None
) -> str:
    """The README of a materialized subnet pushed to ``repo_id``."""
    config = qfa_config(model)
    if not config.materialized:
        raise ValueError("render_materialized_card: the model is a supernet, not a materialized subnet.")
    selection = dict(config.selection or {})
    space = search_space(model)
    subnet = get_subnet(model)
    cost = space.cost(subnet)
    base_model = _base_model(model, selection)
    counts = Counter(subnet.values())
    rows = "\n".join(f"| `{g.name}` | {subnet[g.name]} | {len(g.layers)} |" for g in space.groups)
    selected_by = (
        f"`{selection['strategy']}` search, {selection['metric']} {selection['score']:.4f}"
        if "strategy" in selection
        else "explicit subnet"
    )
    pareto = (
        f"![Pareto front of the search: average bits against {selection.get('metric', 'score')}]({pareto_image})"
        if pareto_image
        else ""
    )
    return _template("materialized").substitute(
        front_matter=_front_matter(base_model, [f"{b}-bit" for b in sorted(counts)] + list(tags or [])),
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        base_model=base_model,
        budget=selection.get("budget", "explicit subnet"),
        avg_bits=f"{cost.avg_bits:.3f}",
        size=_size(cost.bytes),
        bit_counts=", ".join(f"{counts[b]} group(s) at {b} bits" for b in sorted(counts)),
        method=config.method.upper(),
        group_size=config.group_size,
        selected_by=selected_by,
        storage=_storage(config),
        granularity_note=f"{len(space.groups)} {space.granularity} groups; every linear layer of a group has its bits.",
        group_rows=rows,
        search_details=_search_details(selection),
        pareto=pareto,
        deploy_note=_deploy_note(selection),
    )


def _deploy_note(selection: Mapping) -> str:
    """How the adapters went into the integers (the variants the materialized model recorded)."""
    variants = sorted(set((selection.get("adapter_variants") or {"": "qa-lora"}).values()))
    return "; ".join(get_variant(v).deploy_note for v in variants)


def write_model_card(
    model: nn.Module, folder: str | os.PathLike, repo_id: str, tags: list[str] | None = None
) -> str:
    """Render the right card for ``model`` into ``folder/README.md`` (and the Pareto plot beside it)."""
    from ..search.plot import plot_pareto

    config = qfa_config(unwrap_model(model))
    if config.materialized:
        selection = config.selection or {}
        image = None
        if selection.get("pareto_front"):
            image = PARETO_IMAGE
            plot_pareto(selection, os.path.join(folder, image), title=f"{repo_id}: subnet search")
        text = render_materialized_card(model, repo_id, pareto_image=image, tags=tags)
    else:
        text = render_supernet_card(model, repo_id, tags=tags)
    path = os.path.join(folder, "README.md")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


__all__ = ["PARETO_IMAGE", "render_materialized_card", "render_supernet_card", "write_model_card"]
