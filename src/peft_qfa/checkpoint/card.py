"""The supernet's model card (``model_cards/supernet.md``), and the helpers every card shares.

It lives below ``deploy/`` so that ``save_supernet`` (and ``peft-qfa train``, which calls it) writes
our card into ``README.md``; the materialized card (``deploy/model_card.py``) reuses the helpers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib.resources import files
from string import Template

from torch import nn

from ..supernet.budget import Budget
from ..supernet.config import qfa_config, unwrap_model
from ..supernet.subnet import search_space

TAGS = ("peft-qfa", "llm-qfa", "quantized", "mixed-precision")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _template(name: str) -> Template:
    return Template((files("peft_qfa.checkpoint") / "model_cards" / f"{name}.md").read_text(encoding="utf-8"))


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


def _adapter_summary(model: nn.Module) -> str:
    peft_config = getattr(model, "peft_config", None)
    if not peft_config:
        return "none (an untrained supernet)"
    parts = []
    for name, cfg in peft_config.items():
        settings = [f"r={getattr(cfg, 'r', '?')}", f"alpha={getattr(cfg, 'lora_alpha', '?')}"]
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


__all__ = ["TAGS", "render_supernet_card"]
