"""Pushing QFA models to the Hub with a generated model card.

``push_to_hub`` writes everything into a temporary folder first (the model's files, ``README.md``
from :mod:`.model_card`, the Pareto plot) and uploads it in one commit, so a failed upload
changes nothing on disk or in the model and can simply be retried.

A materialized model's own ``model.push_to_hub(repo_id)`` is this function (bound to the instance
when the model is materialized or loaded; :func:`peft_qfa._compat.bind_push_to_hub`), because
transformers' version would overwrite the README with a generic card. Supernets are pushed with
``peft_qfa.push_to_hub(peft_model, repo_id)``: the supernet and its adapters go into one repo, the
folder layout of :mod:`peft_qfa.checkpoint` that ``from_pretrained(repo, budget=...)`` reads.
"""

from __future__ import annotations

import tempfile
from typing import Any

from torch import nn

from .._compat import bind_push_to_hub
from ..checkpoint import point_adapters_at, save_supernet
from ..supernet.config import qfa_config, unwrap_model
from .model_card import write_model_card


class HubPushError(OSError):
    """An upload to the Hub failed; nothing local was changed and the push can be retried."""


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
    tokenizer: Any = None,
):
    """Upload a materialized subnet, or a supernet with its adapters, to ``repo_id`` with a model card.

    Same arguments as transformers' ``push_to_hub``. The card (``README.md``) names the base model,
    the budget, the true bits per group, the search and its score, a Pareto plot and a load snippet.

    ``search_data`` (token ids, supernets only) is uploaded as ``qfa_search_data.safetensors``, so that
    ``from_pretrained(repo_id, quantization_config=QFAQuantizationConfig(budget=...))`` needs nothing else.
    ``tokenizer`` is uploaded beside the model (a supernet without one takes its source model's, as
    :func:`peft_qfa.save_supernet` does).

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
            if tokenizer is not None:
                tokenizer.save_pretrained(folder)
        else:
            save_supernet(
                model, folder, max_shard_size=max_shard_size or "50GB", search_data=search_data, tokenizer=tokenizer
            )
            point_adapters_at(folder, repo_id)  # the supernet and its adapters share the repo
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
    bind_push_to_hub(model, push_to_hub)


__all__ = ["HubPushError", "attach_qfa_push_to_hub", "push_to_hub", "save_supernet"]
