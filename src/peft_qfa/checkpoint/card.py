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
from ..tuner import trainable_parameters

TAGS = ("peft-qfa", "llm-qfa", "quantized", "mixed-precision")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _template(name: str) -> Template:
    return Template((files("peft_qfa.checkpoint") / "model_cards" / f"{name}.md").read_text(encoding="utf-8"))


def _size(n_bytes: float) -> str:
    return Budget("bytes", 0.0).format(n_bytes)


def _is_hub_id(name: str) -> bool:
    return bool(_REPO_ID.match(name)) and not os.path.exists(name)


def _base_model(model: nn.Module, selection: Mapping | None) -> str:
    """The float model the card names: the first Hub id among the one the supernet was built from
    (``QFAQuantizationConfig.base_model``), the search's source and the model's own path; a local path
    is never named (it means nothing on the Hub)."""
    config = getattr(model.config, "quantization_config", None)
    built_from = config.get("base_model") if isinstance(config, Mapping) else getattr(config, "base_model", None)
    candidates = [built_from, (selection or {}).get("source"), getattr(model.config, "name_or_path", None)]
    for name in candidates:
        if name and _is_hub_id(str(name)):
            return str(name)
    return "a local model"


def _front_matter(base_model: str, extra_tags: list[str]) -> str:
    lines = ["library_name: transformers", "tags:"] + [f"- {tag}" for tag in (*TAGS, *extra_tags)]
    if _is_hub_id(base_model):
        lines.append(f"base_model: {base_model}")
    return "\n".join(lines)


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


__all__ = ["TAGS", "render_supernet_card"]
