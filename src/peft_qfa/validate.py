"""Checks of arguments, paths and data that run before any model is loaded or built.

Each check raises ``ValueError`` (``FileNotFoundError`` for a missing local path) whose message
names the argument (``what``: a CLI flag like ``--lr`` or an API argument like ``lora_alpha``), the
bad value and the fix. The CLI turns them into one ``peft-qfa CMD: error: ...`` line (exit code 2).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

_TYPE_WORDS = {int: "an integer", float: "a number"}


def parsed(what: str, value: Any, parse: Callable[[Any], Any]) -> Any:
    """``parse(value)``, with a failure reported as ``what`` (the flag) and the bad value."""
    try:
        return parse(value)
    except (TypeError, ValueError) as err:
        expected = _TYPE_WORDS.get(parse)
        reason = f"expected {expected}" if expected else str(err)
        raise ValueError(f"{what}={value!r} is not valid: {reason}.") from None


def finite_number(what: str, value: Any, *, positive: bool = True, allow_zero: bool = False) -> float:
    """``value`` as a float after checking it is a finite (positive) number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} must be a number, got {value!r}.")
    if not math.isfinite(value):
        raise ValueError(f"{what}={value!r} must be a finite number (not NaN or infinite).")
    if positive and (value < 0 or (value == 0 and not allow_zero)):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what}={value!r} must be {bound}.")
    return float(value)


def positive_int(what: str, value: Any, *, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{what} must be an integer {bound}, got {value!r}.")
    return value


def looks_like_local_path(value: str) -> bool:
    """Whether ``value`` is meant as a local path rather than a Hub repo id (``org/name``)."""
    text = os.fspath(value)
    return (
        text.startswith((".", "/", "~", os.sep))
        or text.count("/") > 1
        or text.endswith(("/", os.sep))
        or (os.sep != "/" and os.sep in text)
    )


def model_source(what: str, value: Any, *, needs: str = "config.json") -> str:
    """A local model folder holding ``needs``, or a Hub repo id; a missing local path is named as such."""
    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{what} must be a folder path or a Hub repo id, got {value!r}.")
    from .atomic import recover_folder

    text = os.fspath(value)
    path = Path(text).expanduser()
    if not path.exists() and looks_like_local_path(text):
        recover_folder(path)  # a save killed between its two renames leaves the old folder beside the name
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{what} `{text}` is a file; give the folder that holds {needs}.")
        if needs and not (path / needs).is_file():
            raise FileNotFoundError(
                f"{what} `{text}` holds no {needs}; give a folder written by save_pretrained (or a Hub repo id)."
            )
        weight_files(what, path)
        return str(path)
    if looks_like_local_path(text) or not _valid_repo_id(text):
        raise FileNotFoundError(f"{what} `{text}`: no such folder. Check the path (or give a Hub repo id).")
    return text


def _valid_repo_id(text: str) -> bool:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
    except HFValidationError:
        return False
    return True


def weight_files(what: str, folder: Path) -> None:
    """Check the JSON files, safetensors headers and adapters of ``folder``: a damaged one is named before any load."""
    from .supernet.integrity import check_saved_folder

    try:
        check_saved_folder(folder)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None


def existing_files(what: str, values: list[str]) -> list[str]:
    missing = [v for v in values if not Path(v).expanduser().is_file()]
    if missing:
        raise FileNotFoundError(f"{what}: no such file(s) {missing}.")
    return values


def output_folder(what: str, value: Any) -> Path:
    """A path that can become a folder (not an existing file, not the current folder)."""
    from .atomic import check_target_folder

    if not isinstance(value, (str, os.PathLike)) or not os.fspath(value):
        raise ValueError(f"{what} must be a folder path, got {value!r}.")
    return check_target_folder(value, what)


def json_mapping(what: str, text: str) -> dict:
    """A JSON object read from a file path or given inline."""
    path = Path(text).expanduser()
    try:
        data = json.loads(path.read_text(encoding="utf-8") if path.is_file() else text)
    except json.JSONDecodeError as err:
        source = f"the file {text}" if path.is_file() else "the inline JSON"
        hint = "" if path.is_file() else " (or no such file)"
        raise ValueError(f"{what}: {source} is not valid JSON{hint}: {err}.") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} must hold a JSON object like {{\"model.layers.0\": 4}}, got {type(data).__name__}.")
    return dict(data)




def token_ids_in_vocab(what: str, batches, vocab_size: int) -> None:
    """Refuse token ids outside ``[0, vocab_size)`` (an embedding lookup would fail deep inside torch)."""
    low = min((int(b.min()) for b in batches if b.numel()), default=0)
    high = max((int(b.max()) for b in batches if b.numel()), default=0)
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{what}: token ids range from {low} to {high}, outside this model's vocabulary of {vocab_size} ids; "
            "were they made with another tokenizer? Tokenize with the model's own tokenizer."
        )


def saved_qfa_config(what: str, folder: str) -> dict | None:
    """The ``quantization_config`` of a local saved model's config.json (``None`` for a Hub id); must be ``"qfa"``."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{what}: {path} is not valid JSON ({err}); save the model again.") from None
    quantization = config.get("quantization_config") if isinstance(config, Mapping) else None
    if not isinstance(quantization, Mapping) or quantization.get("quant_method") != "qfa":
        raise ValueError(
            f"{what} `{folder}` is not a QFA model (its config.json has no `qfa` quantization_config); give a folder "
            "written by `peft-qfa train` / `peft_qfa.save_supernet`."
        )
    return dict(quantization)


__all__ = [
    "existing_files",
    "finite_number",
    "json_mapping",
    "looks_like_local_path",
    "model_source",
    "output_folder",
    "parsed",
    "positive_int",
    "saved_qfa_config",
    "token_ids_in_vocab",
    "weight_files",
]
