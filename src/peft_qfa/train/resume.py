"""``--resume auto``: the newest *complete* Trainer checkpoint, skipping one a kill left half-written.

transformers' ``Trainer`` writes ``checkpoint-N`` in place: the adapter weights first, then the
optimizer, scheduler and RNG states, and ``trainer_state.json`` last. A kill during that write
leaves a folder that transformers' ``get_last_checkpoint`` still picks (it only looks at names), and
the resume then fails although the previous checkpoint is intact. A checkpoint is complete here when

* ``trainer_state.json`` exists and parses, with ``global_step`` equal to the folder's ``N`` (it is
  written last, so every file before it was closed when it appeared);
* every weight file (``*.safetensors``) has a readable header and its full length;
* the optimizer and scheduler states exist and are not empty (unless the run saved the model only).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

TRAINER_STATE = "trainer_state.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _safetensors_complete(path: Path) -> bool:
    """Whether the header parses and the file is as long as the header says."""
    try:
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return False
    ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
    return path.stat().st_size == 8 + size + max(ends, default=0)


def incomplete_reason(folder: str | os.PathLike) -> str | None:
    """Why the checkpoint ``folder`` cannot be resumed from, or ``None`` when it is complete."""
    folder = Path(folder)
    match = _CHECKPOINT.match(folder.name)
    state_path = folder / TRAINER_STATE
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return f"no {TRAINER_STATE} (the write was interrupted)"
    except (OSError, ValueError):
        return f"{TRAINER_STATE} is unreadable"
    if match and state.get("global_step") != int(match.group(1)):
        return f"{TRAINER_STATE} says step {state.get('global_step')}"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights and not any(folder.glob("*.bin")):
        return "no weight files"
    broken = [w.name for w in weights if not _safetensors_complete(w)]
    if broken:
        return f"truncated weight file(s) {broken}"
    for name in ("optimizer.pt", "scheduler.pt"):
        path = folder / name
        if path.exists() and path.stat().st_size == 0:
            return f"empty {name}"
    return None


def latest_complete_checkpoint(folder: str | os.PathLike) -> tuple[str | None, list[str]]:
    """``(newest complete checkpoint-N in folder or None, lines naming each newer one skipped and why)``."""
    folder = Path(folder)
    if not folder.is_dir():
        return None, []
    candidates = sorted(
        (int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))
    )
    skipped = []
    for _, path in reversed(candidates):
        reason = incomplete_reason(path)
        if reason is None:
            return str(path), skipped
        skipped.append(f"skipped {path.name}: {reason}")
    return None, skipped


__all__ = ["incomplete_reason", "latest_complete_checkpoint"]
