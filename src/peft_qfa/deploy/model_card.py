"""Model cards for a materialized subnet and for a supernet, rendered from ``model_cards/*.md``.

Every number on a card is read off the model: bits per group from ``peft_qfa.get_subnet`` (the
layers' real bit-widths, not what a search intended), sizes from the one cost model, the search
that chose the subnet from the ``selection`` its config records.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from importlib.resources import files
from string import Template

from torch import nn

from ..supernet.budget import Budget
from ..supernet.config import qfa_config, unwrap_model
from ..supernet.subnet import get_subnet, search_space
from ..tuner import get_variant, trainable_parameters

PARETO_IMAGE = "pareto.png"
TAGS = ("peft-qfa", "llm-qfa", "quantized", "mixed-precision")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _template(name: str) -> Template:
    return Template((files("peft_qfa.deploy") / "model_cards" / f"{name}.md").read_text(encoding="utf-8"))


def _size(n_bytes: float) -> str:
    return Budget("bytes", 0.0).format(n_bytes)


def _base_model(model: nn.Module, selection: Mapping | None) -> str:
    source = (selection or {}).get("source") or getattr(model.config, "name_or_path", None) or "unknown"
    return str(source)


def _front_matter(base_model: str, extra_tags: list[str]) -> str:
    lines = ["library_name: transformers", "tags:"] + [f"- {tag}" for tag in (*TAGS, *extra_tags)]
    if _REPO_ID.match(base_model) and not os.path.exists(base_model):  # a local path is no Hub base model
        lines.append(f"base_model: {base_model}")
    return "\n".join(lines)


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


def _adapter_summary(model: nn.Module) -> str:
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return "none (an untrained supernet)"
    parts = []
    for name, cfg in peft_config.items():
        settings = [
            f"variant={getattr(cfg, 'variant', 'qa-lora')}",
            f"r={getattr(cfg, 'r', '?')}",
            f"alpha={getattr(cfg, 'lora_alpha', '?')}",
            f"{trainable_parameters(model, name):,} trainable parameters per bit-width",
        ]
        parts.append(f"`{name}` ({', '.join(settings)})")
    return ", ".join(parts)


def render_supernet_card(model: nn.Module, repo_id: str, tags: list[str] | None = None) -> str:
    """The README of a supernet (with its adapters) pushed to ``repo_id``."""
    base = unwrap_model(model)
    config = qfa_config(base)
    space = search_space(model)
    low = space.subnet({g.name: min(g.bits) for g in space.groups})
    high = space.subnet({g.name: max(g.bits) for g in space.groups})
    low_cost, high_cost = space.cost(low), space.cost(high)
    base_model = _base_model(base, None)
    return _template("supernet").substitute(
        front_matter=_front_matter(base_model, ["supernet", *(tags or [])]),
        title=repo_id.split("/")[-1],
        repo_id=repo_id,
        base_model=base_model,
        bits="/".join(str(b) for b in space.all_bits),
        method=config.method.upper(),
        group_size=config.group_size,
        min_bits=f"{low_cost.avg_bits:g}",
        max_bits=f"{high_cost.avg_bits:g}",
        min_size=_size(low_cost.bytes),
        max_size=_size(high_cost.bytes),
        n_groups=len(space.groups),
        granularity=space.granularity,
        n_layers=len(space.layers),
        supernet_size=_size(space.supernet_bytes()),
        adapters=_adapter_summary(model),
    )


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
