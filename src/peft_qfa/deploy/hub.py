"""Pushing QFA models to the Hub with a generated model card, and the one-folder supernet layout.

``push_to_hub`` writes everything into a temporary folder first (the model's files, ``README.md``
from :mod:`.model_card`, the Pareto plot) and uploads it in one commit, so a failed upload
changes nothing on disk or in the model and can simply be retried.

A materialized model's own ``model.push_to_hub(repo_id)`` is this function (bound to the instance
when the model is materialized or loaded), because transformers' version would overwrite the
README with a generic card. Supernets are pushed with ``peft_qfa.push_to_hub(peft_model, repo_id)``:
the supernet and its adapters go into one repo, the layout ``from_pretrained(repo, budget=...)``
reads.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from types import MethodType
from typing import Any

from torch import nn

from ..atomic import staged_folder
from ..search.saved_data import save_search_data, search_token_ids
from ..validate import token_ids_in_vocab
from .materialize import forget_adapter_loading, qfa_config, unwrap_model
from .model_card import write_model_card


class HubPushError(OSError):
    """An upload to the Hub failed; nothing local was changed and the push can be retried."""


def _adapter_wrappers(model: nn.Module) -> list[nn.Module]:
    from ..tuner import QFAAdapterLayer

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


def save_supernet(
    model: nn.Module, folder: str | os.PathLike, max_shard_size: int | str = "50GB", search_data: Any = None
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
        if search_data is not None:
            save_search_data(staging, search_data)


def _adapters_belong_to(folder: str, repo_id: str) -> None:
    """Point the adapters' ``base_model_name_or_path`` at the repo they are pushed to.

    For a Hub repo id, transformers' ``from_pretrained`` loads the *base* named in
    ``adapter_config.json`` and the adapters from the repo; the supernet and its adapters live in
    the same repo, so that name must be the repo itself, not the folder the supernet was built from.
    """
    path = os.path.join(folder, "adapter_config.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
        config["base_model_name_or_path"] = repo_id
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2, sort_keys=True)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    commit_message: str | None = None,
    commit_description: str | None = None,
    private: bool | None = None,
    token: bool | str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    max_shard_size: int | str | None = "50GB",
    tags: list[str] | None = None,
    search_data: Any = None,
):
    """Upload a materialized subnet, or a supernet with its adapters, to ``repo_id`` with a model card.

    Same arguments as transformers' ``push_to_hub``. The card (``README.md``) names the base model,
    the budget, the true bits per group, the search and its score, a Pareto plot and a load snippet.

    ``search_data`` (token ids, supernets only) is uploaded as ``qfa_search_data.safetensors``, so that
    ``from_pretrained(repo_id, quantization_config=QFAQuantizationConfig(budget=...))`` needs nothing else.

    Returns:
        `huggingface_hub.CommitInfo` (a ``str``: the commit URL).

    Raises:
        `HubPushError`: the Hub refused or failed the upload; the message says what the Hub answered.
    """
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    materialized = qfa_config(unwrap_model(model)).materialized
    if materialized and search_data is not None:
        raise ValueError("push_to_hub: `search_data` belongs with a supernet; this model is a materialized subnet.")
    kind = "materialized subnet" if materialized else "supernet"
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="qfa-push-") as folder:
        if materialized:
            model.save_pretrained(folder, max_shard_size=max_shard_size or "50GB")
        else:
            save_supernet(model, folder, max_shard_size=max_shard_size or "50GB", search_data=search_data)
            _adapters_belong_to(folder, repo_id)
        write_model_card(model, folder, repo_id, tags=tags)
        try:
            repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
            return api.upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                commit_message=commit_message or f"Upload QFA {kind}",
                commit_description=commit_description,
                revision=revision,
                create_pr=create_pr,
            )
        except (HfHubHTTPError, OSError) as err:
            raise HubPushError(
                f"push_to_hub: uploading the QFA {kind} to `{repo_id}` failed: {err}. Nothing local was changed "
                "(the model and its folders are as they were); retry the push once the Hub answers again."
            ) from err


def attach_qfa_push_to_hub(model: nn.Module) -> None:
    """Make ``model.push_to_hub(...)`` this module's :func:`push_to_hub` (with the QFA model card)."""
    model.push_to_hub = MethodType(push_to_hub, model)


__all__ = ["HubPushError", "attach_qfa_push_to_hub", "push_to_hub", "save_supernet"]
