"""A supernet folder: the supernet and its QFA adapters side by side, plus optional search data.

This is the layout ``save_supernet`` writes, ``peft-qfa train`` ends with, ``push_to_hub`` uploads
and ``from_pretrained(folder, budget=...)`` reads:

* ``config.json`` + ``model.safetensors``: the supernet, as ``save_pretrained`` writes it;
* ``adapter_config.json`` + ``adapter_model.safetensors``: the QFA adapters, as PEFT writes them;
* ``qfa_search_data.safetensors`` (optional): token ids a load with only a budget scores subnets on
  (:mod:`peft_qfa.checkpoint.search_data`).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from collections.abc import Sequence
from typing import Any

from torch import nn

from .._compat import forget_adapter_loading
from ..atomic import staged_folder
from ..supernet.config import qfa_config, unwrap_model
from ..tuner import QFAAdapterLayer
from ..validate import token_ids_in_vocab
from .search_data import save_search_data, search_token_ids

ADAPTER_CONFIG_NAME = "adapter_config.json"


def checkpoint_folder(checkpoint_files: Sequence[str] | None) -> str | None:
    """The local folder (a Hub snapshot for a repo id) the checkpoint was read from."""
    return os.path.dirname(checkpoint_files[0]) if checkpoint_files else None


def has_adapter_files(folder: str | None) -> bool:
    """Whether ``folder`` holds QFA adapters beside the supernet (their ``adapter_config.json``)."""
    return folder is not None and os.path.isfile(os.path.join(folder, ADAPTER_CONFIG_NAME))


def has_qfa_adapters(model: nn.Module) -> bool:
    """Whether ``model`` carries QFA adapter layers (a ``PeftModel``, or adapters from ``load_adapter``)."""
    return bool(_adapter_wrappers(model))


def _adapter_wrappers(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, QFAAdapterLayer)]


def _adapter_layers(model: nn.Module) -> dict[int, nn.Module]:
    """``{id(adapter wrapper): the supernet layer it wraps}``."""
    return {id(m): m.get_base_layer() for m in _adapter_wrappers(model)}


def _without_adapters(base: nn.Module) -> nn.Module:
    """A structural copy of ``base`` whose adapter wrappers are replaced by the supernet layers they wrap.

    Every tensor is shared with ``base`` (the memo maps it to itself), so this costs no weight
    memory; it exists only so that ``save_pretrained`` writes the bare supernet under its own names.
    """
    memo: dict[int, Any] = _adapter_layers(base)
    for tensor in [*base.parameters(), *base.buffers()]:
        memo[id(tensor)] = tensor
    quantizer = getattr(base, "hf_quantizer", None)
    memo[id(quantizer)] = quantizer
    bare = copy.deepcopy(base, memo)
    forget_adapter_loading(bare)
    return bare


def _save_adapters(model: nn.Module, folder: str | os.PathLike) -> None:
    """Write the QFA adapters of ``model`` as PEFT's files (``adapter_config.json``, ``adapter_model.safetensors``).

    A ``PeftModel`` saves itself (PEFT's own code). A transformers model whose adapters came from
    ``load_adapter`` is written here with PEFT's ``get_peft_model_state_dict`` rather than through
    transformers' ``save_pretrained``: that route checks the installed PEFT against transformers' own
    minimum (transformers 5.24 asks for a PEFT newer than any release), so going through PEFT alone
    keeps the supernet saveable with every transformers in our range. The files are the ones
    transformers writes: the active adapter's config, and its weights under ``base_model.model.``.
    """
    from peft import PeftModel, get_peft_model_state_dict
    from safetensors.torch import save_file

    if isinstance(model, PeftModel):
        model.save_pretrained(folder)
        return
    configs = getattr(model, "peft_config", None) or {}
    active = {name for layer in _adapter_wrappers(model) for name in layer.active_adapters}
    if len(active) != 1 or not set(active) <= set(configs):
        raise ValueError(
            f"save_supernet: expected one active adapter with a config, found {sorted(active)} (configs: "
            f"{sorted(configs)}); call `model.set_adapter(name)` for the one to save."
        )
    (adapter_name,) = active
    state = get_peft_model_state_dict(model, adapter_name=adapter_name)
    state = {f"base_model.model.{key}": tensor.detach().contiguous() for key, tensor in state.items()}
    os.makedirs(folder, exist_ok=True)
    save_file(state, os.path.join(folder, "adapter_model.safetensors"), metadata={"format": "pt"})
    configs[adapter_name].save_pretrained(folder)


def point_adapters_at(folder: str | os.PathLike, base: str) -> None:
    """Name ``base`` as the adapters' ``base_model_name_or_path`` in ``folder/adapter_config.json``.

    PEFT's ``AutoPeftModelForCausalLM`` (and transformers, for a Hub repo) load the *base* named there,
    then the adapters: the base of QFA adapters is the supernet beside them, never the float model the
    supernet was built from. ``save_supernet`` names the folder itself, a Hub push the repo.
    """
    path = os.path.join(folder, ADAPTER_CONFIG_NAME)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["base_model_name_or_path"] = base
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)


def _write_card(model: nn.Module, folder: str | os.PathLike, name: str) -> None:
    """Our card in ``README.md``, over the blank template PEFT's adapter save leaves there."""
    from .card import render_supernet_card

    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as handle:
        handle.write(render_supernet_card(model, name))


def _save_tokenizer(base: nn.Module, tokenizer: Any, folder: str | os.PathLike) -> None:
    """The tokenizer given, or the one beside the model the supernet was built from; a warning when neither."""
    if tokenizer is None:
        from transformers import AutoTokenizer

        source = getattr(base.config, "name_or_path", None)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source) if source else None
        except (OSError, ValueError, TypeError):
            tokenizer = None
        if tokenizer is None:
            warnings.warn(
                f"save_supernet: found no tokenizer beside `{source}`; pass `tokenizer=` so that the folder loads "
                "with a budget and text search data on its own.",
                stacklevel=3,
            )
            return
    tokenizer.save_pretrained(folder)


def save_supernet(
    model: nn.Module,
    folder: str | os.PathLike,
    max_shard_size: int | str = "50GB",
    search_data: Any = None,
    tokenizer: Any = None,
) -> None:
    """Write a supernet and its QFA adapters side by side into ``folder``.

    The supernet (``config.json``, ``model.safetensors``) is what ``from_pretrained(folder)`` builds;
    the adapters (``adapter_config.json``, ``adapter_model.safetensors``) are what PEFT and
    transformers' ``load_adapter`` read, and what a load with a ``budget`` merges.

    Args:
        model: a supernet, bare, as a ``PeftModel`` with QFA adapters, or with adapters loaded through
            transformers' ``load_adapter``.
        folder: the destination (created if missing).
        search_data (*optional*): token ids (1-D or 2-D) kept in the folder as
            ``qfa_search_data.safetensors``; a later load with only a budget scores subnets on them.
        tokenizer (*optional*): saved beside the supernet (text search data and the model card's users
            need it); defaults to the tokenizer of the model the supernet was built from, when it has one.

    The folder's ``README.md`` is the supernet's model card (``model_cards/supernet.md``).
    """
    base = unwrap_model(model)
    config = qfa_config(base)
    if config.materialized:
        raise ValueError("save_supernet: this model is a materialized subnet; use its `save_pretrained`.")
    if search_data is not None:
        search_data = search_token_ids(search_data)  # checked before anything is written
        token_ids_in_vocab("save_supernet: search_data", [search_data], base.get_input_embeddings().num_embeddings)
    has_adapters = bool(_adapter_layers(base))
    with staged_folder(folder, "save_supernet folder") as staging:  # a kill leaves the old folder or the new one
        (_without_adapters(base) if has_adapters else base).save_pretrained(staging, max_shard_size=max_shard_size)
        if has_adapters:
            _save_adapters(model, staging)
            point_adapters_at(staging, os.path.abspath(folder))
        if search_data is not None:
            save_search_data(staging, search_data)
        _save_tokenizer(base, tokenizer, staging)
        _write_card(model, staging, os.path.basename(os.path.normpath(os.fspath(folder))))


__all__ = [
    "ADAPTER_CONFIG_NAME",
    "checkpoint_folder",
    "has_adapter_files",
    "has_qfa_adapters",
    "point_adapters_at",
    "save_supernet",
]
