"""Atomic folder writes: a kill at any moment leaves the old folder or the new one, complete.

Every folder peft-qfa writes (``save_supernet``, a materialized model's ``save_pretrained``,
``peft-qfa train``'s output, ``peft-qfa export``) goes through :func:`atomic_folder`:

1. everything is written into a staging folder ``<target>.tmp-<random>`` beside the target (same
   file system, so the renames below are atomic), and every file is fsynced;
2. files and subfolders of an existing target that the new save does not write (a tokenizer saved
   earlier, ``checkpoints/``) are hard-linked (copied where links fail) into the staging folder;
3. an existing target is renamed to ``<target>.old-<random>``, the staging folder is renamed to
   the target, and the old folder is removed.

A kill before step 3 leaves the old target and a stale ``.tmp-*`` sibling; a kill after it leaves
the new target and perhaps a stale ``.old-*`` sibling. A kill *between* the two renames leaves no
target at all but a complete ``.old-*`` sibling (it was the target a moment before):
:func:`recover_folder`, which every peft-qfa entry point and the next save run first, renames it
back. Stale ``.tmp-*`` siblings are never complete by construction and are deleted.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

TMP_TAG = ".tmp-"
OLD_TAG = ".old-"


def _siblings(target: Path, tag: str) -> list[Path]:
    parent = target.parent
    if not parent.is_dir():
        return []
    prefix = target.name + tag
    return sorted(p for p in parent.iterdir() if p.name.startswith(prefix))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse to open folders
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _fsync_tree(root: Path) -> None:
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def recover_folder(target: str | os.PathLike) -> Path | None:
    """Finish or undo an interrupted :func:`atomic_folder` swap of ``target``; returns the recovered folder.

    With the target missing, the newest complete ``.old-*`` sibling is renamed back (the kill came
    between the two renames). Stale ``.tmp-*`` siblings are removed, and ``.old-*`` siblings too
    once the target exists. Returns the target path when something was renamed back, else ``None``.
    """
    target = Path(target).expanduser()
    recovered = None
    olds = _siblings(target, OLD_TAG)
    if not target.exists() and olds:
        newest = max(olds, key=lambda p: p.stat().st_mtime)
        os.rename(newest, target)
        _fsync_dir(target.parent)
        recovered = target
        olds.remove(newest)
    if target.exists():
        for stale in olds:
            _remove(stale)
    for stale in _siblings(target, TMP_TAG):
        _remove(stale)
    return recovered


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _carry_over(old: Path, staging: Path, skip_suffixes: tuple[str, ...]) -> None:
    """Bring into ``staging`` what ``old`` holds and the new save did not write (weights excepted)."""
    for entry in old.iterdir():
        destination = staging / entry.name
        if destination.exists() or entry.name.endswith(skip_suffixes):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, destination, symlinks=True, copy_function=_link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), destination)
        else:
            _link_or_copy(str(entry), str(destination))


def check_target_folder(target: str | os.PathLike, what: str = "output") -> Path:
    """``target`` as a ``Path`` after checking it can become a folder (it is not a file, nor above the cwd)."""
    path = Path(target).expanduser()
    if path.exists() and not path.is_dir():
        raise ValueError(f"The {what} `{target}` is an existing file, not a folder; choose a folder path.")
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents:
        raise ValueError(
            f"The {what} `{target}` is the current folder or one above it, which a save replaces as a whole; "
            "choose a new folder for it."
        )
    return path


# Weight files and shard indexes of an older save must not survive next to a newer one.
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json", ".pt", ".pth")


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """``with atomic_folder(target) as staging:`` write everything into ``staging``; see the module docstring.

    On an exception inside the block, the staging folder is removed and ``target`` is untouched.
    Nested use on the same target (a helper saving into the staging folder it was handed) is the
    caller's business: only the outermost ``atomic_folder`` swaps.
    """
    target = check_target_folder(target, what)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    token = secrets.token_hex(4)
    staging = target.with_name(f"{target.name}{TMP_TAG}{token}")
    staging.mkdir()
    try:
        yield staging
        if target.is_dir():
            _carry_over(target, staging, WEIGHT_SUFFIXES)
        _fsync_tree(staging)
    except BaseException:
        _remove(staging)
        raise
    old = target.with_name(f"{target.name}{OLD_TAG}{token}")
    if target.exists():
        os.rename(target, old)
    os.rename(staging, target)
    _fsync_dir(target.parent)
    if old.exists():
        _remove(old)


def is_staging_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` is (inside) a staging folder of :func:`atomic_folder`: saving there is already atomic."""
    return any(TMP_TAG in part for part in Path(path).parts)


@contextlib.contextmanager
def staged_folder(target: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """:func:`atomic_folder`, or ``target`` itself when it already is a staging folder (a save inside a save)."""
    if is_staging_path(target):
        path = Path(target)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with atomic_folder(target, what) as staging:
        yield staging




__all__ = [
    "atomic_folder",
    "check_target_folder",
    "is_staging_path",
    "recover_folder",
    "staged_folder",
]
