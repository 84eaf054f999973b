"""Checks of ``peft-qfa search`` / ``export`` / ``push`` arguments, run before the supernet is loaded.

Loading a real supernet takes minutes, so everything that can be judged from the flags, the files
named and the saved ``config.json`` is judged first: the folder, the budgets (a bit budget outside
the supernet's bit-widths), an explicit subnet, the data files, the numbers and the output folder.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..checkpoint.search_data import SEARCH_DATA_NAME, has_saved_search_data
from ..supernet.budget import Budget, feasible_range
from ..supernet.space import Subnet
from ..validate import (
    existing_files,
    json_mapping,
    looks_like_local_path,
    model_source,
    output_folder,
    saved_qfa_config,
    token_ids_in_vocab,
)
from .saved_space import MARGIN, saved_search_space

_COUNTS = {"max_tokens": 2, "seq_len": 2, "max_examples": 1, "n_random": 1, "n_refine": 1, "generations": 1,
           "children": 1}


def _supernet(args: argparse.Namespace) -> dict | None:
    """The supernet folder's saved ``qfa`` config (``None`` for a Hub id); refuses a materialized model."""
    args.supernet = model_source("SUPERNET", args.supernet)
    config = saved_qfa_config("SUPERNET", args.supernet)
    if config is not None and config.get("layer_bits") is not None:
        raise ValueError(
            f"SUPERNET `{args.supernet}` is a materialized model (one bit-width per layer), not a supernet; give the "
            "folder `peft-qfa train` wrote."
        )
    return config


def _space(args: argparse.Namespace, config: dict | None):
    """The saved supernet's search space from its file headers (``None`` for a Hub id or another layout)."""
    if config is None:
        return None
    return saved_search_space(args.supernet, config)


def _number_or_text(text: str) -> float | str:
    """``--budget`` as the CLI passes it on: a plain number is average bits, anything else a budget string."""
    try:
        return float(text)
    except ValueError:
        return text


def _check_budget(flag: str, text: str, config: dict | None, space) -> None:
    try:
        parsed = Budget.parse(_number_or_text(text))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{flag} {text!r}: {str(err).removeprefix('QFA budget: ')}") from None
    kind, value = parsed.kind, parsed.value
    bits = (config or {}).get("bits")
    if kind == "bits" and bits and not min(bits) - 1e-6 <= value <= max(bits) + 1e-6:
        raise ValueError(
            f"{flag} {text!r}: this supernet's bit-widths are {bits}, so an average-bits budget must lie between "
            f"{min(bits)} and {max(bits)}."
        )
    if space is not None and kind == "bytes":
        low, high = feasible_range(space, kind)
        if not low * (1 - MARGIN) <= value <= high * (1 + MARGIN):
            budget = Budget(kind, value)
            raise ValueError(
                f"{flag} {text!r} ({budget.format()}) is outside this supernet's range: its subnets take "
                f"{budget.format(low)} (every group at its fewest bits) to {budget.format(high)} (every group at its "
                "most bits)."
            )


def _check_common(args: argparse.Namespace) -> None:
    for name, low in _COUNTS.items():
        value = getattr(args, name, None)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value}.")
    if getattr(args, "data", None):
        existing_files("--data", args.data)
        if len(args.data) == 1 and args.data[0].endswith(".json"):  # a task: checked before the load
            from .evaluators import load_task

            try:
                load_task(args.data[0])
            except ValueError as err:
                raise ValueError(f"--data {args.data[0]}: {str(err).removeprefix('MultipleChoiceEvaluator: ')}") from None
    tokenizer = getattr(args, "tokenizer", None)
    if tokenizer and looks_like_local_path(tokenizer) and not Path(tokenizer).expanduser().exists():
        raise FileNotFoundError(f"--tokenizer `{tokenizer}`: no such folder.")


def _check_saved_search_data(args: argparse.Namespace, need: str = "give --data (texts or a .json task)") -> None:
    """Without ``--data`` a local supernet must carry search data, whose ids fit its vocabulary."""
    folder = Path(args.supernet)
    if args.data or not folder.is_dir():
        return
    if not has_saved_search_data(folder):
        raise ValueError(f"{need}: `{args.supernet}` has no {SEARCH_DATA_NAME} of its own.")
    from safetensors.torch import load_file

    vocab_size = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("vocab_size")
    if isinstance(vocab_size, int):
        ids = load_file(folder / SEARCH_DATA_NAME)["input_ids"]
        token_ids_in_vocab(f"{SEARCH_DATA_NAME} of `{args.supernet}`", [ids], vocab_size)


def check_search_args(args: argparse.Namespace) -> None:
    """``peft-qfa search``: the supernet folder, every ``--budget``, the data, the numbers and ``--out``."""
    config = _supernet(args)
    space = _space(args, config)
    for budget in args.budget:
        _check_budget("--budget", budget, config, space)
    _check_common(args)
    _check_saved_search_data(args)
    if args.out:
        output_folder("--out", args.out)


def check_export_args(args: argparse.Namespace) -> dict | None:
    """``peft-qfa export``: as search, plus OUTPUT and ``--subnet``; returns the parsed subnet (or ``None``)."""
    config = _supernet(args)
    output_folder("OUTPUT", args.output)
    _check_common(args)
    space = _space(args, config)
    if args.budget is not None:
        _check_budget("--budget", args.budget, config, space)
        _check_saved_search_data(args, "--budget needs --data (texts or a .json task) to score subnets on")
        return None
    data = json_mapping("--subnet", args.subnet)
    subnet = data.get("bits", data)
    bits = (config or {}).get("bits")
    bad = {g: b for g, b in subnet.items() if isinstance(b, bool) or not isinstance(b, int) or (bits and b not in bits)}
    if bad or not subnet:
        allowed = f" in {bits}" if bits else ""
        raise ValueError(
            f"--subnet maps groups to bit-widths{allowed}, like {{\"model.layers.0\": 4}}; got "
            f"{dict(list(bad.items())[:3]) or 'an empty mapping'}."
        )
    if space is not None:
        try:
            Subnet(space, subnet)
        except ValueError as err:
            raise ValueError(f"--subnet: {err}") from None
    return subnet


def check_push_args(args: argparse.Namespace) -> None:
    """``peft-qfa push``: FOLDER is a local QFA model folder and REPO_ID a valid Hub repo id."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"FOLDER `{args.folder}`: no such folder; give what `peft-qfa export` or `train` wrote.")
    model_source("FOLDER", args.folder)
    saved_qfa_config("FOLDER", args.folder)
    try:
        validate_repo_id(args.repo_id)
    except HFValidationError as err:
        raise ValueError(f"REPO_ID {args.repo_id!r} is not a valid Hub repository id ({err}); write it as `owner/name`.") from None


__all__ = ["check_export_args", "check_push_args", "check_search_args"]
