"""The demo's text: a real corpus from a package registry, split into a training part and a held-out part.

Default: the reStructuredText sources of the CPython documentation, from the Debian package that
``python3-doc`` depends on (``python3.11-doc`` on Debian 12), fetched with ``apt-get download`` and
unpacked with ``dpkg-deb -x`` into ``~/.cache/peft_qfa/corpora`` (or ``$PEFT_QFA_CACHE/corpora``)
once; later runs read the cache and need no network. The split is by document, so no page is on
both sides:

* training part: the tutorial (``tutorial/``) and the HOWTOs (``howto/``), about 950 kB;
* held-out part: the FAQ (``faq/``), about 190 kB.

Instead of it, ``--text FILE`` (one UTF-8 file, its last ~10% held out, cut at a line break) or
``--dataset NAME`` (``datasets.load_dataset``: its validation or test split held out when it has
one, else the last ~10% of its rows).

No PyPI package ships a plain-text corpus that is both real prose and large enough to train on;
Debian's documentation packages do, and ``apt-get`` needs no account or token.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

META_PACKAGE = "python3-doc"
"""Depends on the versioned documentation package of the distribution's Python (``python3.11-doc``...)."""
TRAIN_SECTIONS = ("tutorial", "howto")
HELD_OUT_SECTIONS = ("faq",)
HELD_OUT_FRACTION = 0.1
MAX_DATASET_CHARS = 4_000_000
"""A ``--dataset`` is read up to this many characters per part: a short demo trains on a small share of it."""

ALTERNATIVES = (
    "Pass a corpus of your own instead: `--text FILE` (a UTF-8 text file; its last 10% is held out) or "
    "`--dataset NAME` (a `datasets.load_dataset` name, with `--dataset-config` and `--text-column`)."
)


class CorpusError(RuntimeError):
    """The corpus could not be obtained or split; the message says why and what to pass instead."""


@dataclass(frozen=True)
class Corpus:
    """Training and held-out text, and where each came from (printed by the demo and saved with its results)."""

    name: str
    train: str
    held_out: str
    train_source: str
    held_out_source: str


# ---------------------------------------------------------------------------------------------- cache
def corpora_cache() -> Path:
    """``$PEFT_QFA_CACHE/corpora``, else ``$XDG_CACHE_HOME/peft_qfa/corpora`` (``~/.cache/...``): the
    same root as the converted SmolLM2 of ``peft_qfa.testing``."""
    if os.environ.get("PEFT_QFA_CACHE"):
        root = Path(os.environ["PEFT_QFA_CACHE"]).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "peft_qfa"
    return root / "corpora"


# ---------------------------------------------------------------------------------------------- Debian
def _run(command: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as err:
        raise CorpusError(
            f"The default corpus comes from Debian's package registry, but `{command[0]}` is not installed "
            f"here. {ALTERNATIVES}"
        ) from err


def doc_package() -> str:
    """The versioned package ``python3-doc`` depends on, e.g. ``python3.11-doc`` (refreshing the package
    lists once, as root, when they do not know ``python3-doc``: a fresh container has none)."""
    found = _run(["apt-cache", "depends", META_PACKAGE])
    if found.returncode != 0 and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(f"apt does not know {META_PACKAGE}; running `apt-get update` to fetch the package lists")
        _run(["apt-get", "update"])
        found = _run(["apt-cache", "depends", META_PACKAGE])
    match = re.search(r"Depends:\s*(python3\.\d+-doc)\b", found.stdout)
    if found.returncode != 0 or match is None:
        why = found.stderr.strip() or "no versioned dependency found"
        raise CorpusError(
            f"apt cannot resolve `{META_PACKAGE}` to a documentation package ({why}); run `apt-get update` as "
            f"root and retry. {ALTERNATIVES}"
        )
    return match.group(1)


def fetch_python_docs(cache: Path | None = None) -> Path:
    """The ``_sources`` folder of the CPython documentation (``*.rst.txt``), downloaded and unpacked once.

    The unpacked tree is moved into place only when complete, so an interrupted run leaves no half
    corpus behind.
    """
    target = (cache or corpora_cache()) / META_PACKAGE
    sources = target / "_sources"
    if sources.is_dir():
        return sources
    package = doc_package()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{package}-", dir=target.parent) as staging:
        staging = Path(staging)
        download = _run(["apt-get", "download", package], cwd=staging)
        debs = sorted(staging.glob(f"{package}_*.deb"))
        if download.returncode != 0 or not debs:
            raise CorpusError(
                f"`apt-get download {package}` failed: {download.stderr.strip()[-500:]}. {ALTERNATIVES}"
            )
        unpacked = staging / "unpacked"
        extract = _run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)])
        found = sorted(unpacked.glob("usr/share/doc/python3*/html/_sources"))
        if extract.returncode != 0 or not found:
            raise CorpusError(
                f"`dpkg-deb -x {debs[0].name}` gave no usr/share/doc/python3*/html/_sources "
                f"({extract.stderr.strip()[-300:]}). {ALTERNATIVES}"
            )
        (staging / "kept").mkdir()
        found[0].rename(staging / "kept" / "_sources")
        (staging / "kept" / "PACKAGE").write_text(debs[0].name + "\n", encoding="utf-8")
        (staging / "kept").rename(target)
    return sources


def read_sections(sources: Path, sections: tuple[str, ...]) -> str:
    """Every ``*.rst.txt`` below ``sources/<section>`` for each section, in a fixed (sorted) order."""
    files = [path for section in sections for path in sorted((sources / section).rglob("*.rst.txt"))]
    if not files:
        raise CorpusError(f"No *.rst.txt files under {sources} in {', '.join(sections)}. {ALTERNATIVES}")
    return "\n\n".join(path.read_text(encoding="utf-8", errors="replace") for path in files)


def python_docs_corpus(sources: Path | None = None) -> Corpus:
    """The CPython documentation split by section: tutorial + HOWTOs to train on, the FAQ held out."""
    sources = sources or fetch_python_docs()
    record = sources.parent / "PACKAGE"  # the .deb it came from, written by fetch_python_docs
    package = record.read_text(encoding="utf-8").strip() if record.is_file() else META_PACKAGE
    return Corpus(
        name=f"CPython documentation sources ({package}, Debian)",
        train=read_sections(sources, TRAIN_SECTIONS),
        held_out=read_sections(sources, HELD_OUT_SECTIONS),
        train_source=" + ".join(f"{s}/" for s in TRAIN_SECTIONS),
        held_out_source=" + ".join(f"{s}/" for s in HELD_OUT_SECTIONS),
    )


# ---------------------------------------------------------------------------------------------- the user's own
def split_tail(text: str, fraction: float = HELD_OUT_FRACTION) -> tuple[str, str]:
    """``(head, tail)`` with about ``fraction`` of the characters in the tail, cut at the first line break
    after the mark (at the mark itself when no line break follows)."""
    if not 0 < fraction < 1:
        raise ValueError(f"split_tail: fraction must lie strictly between 0 and 1, got {fraction}.")
    mark = int(len(text) * (1 - fraction))
    newline = text.find("\n", mark)
    cut = newline + 1 if newline != -1 else mark
    head, tail = text[:cut], text[cut:]
    if not head.strip() or not tail.strip():
        raise CorpusError(
            f"The text ({len(text)} characters) is too short to split into a training part and a held-out part."
        )
    return head, tail


def text_file_corpus(path: Path) -> Corpus:
    """One UTF-8 file: the first ~90% to train on, the last ~10% held out."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise CorpusError(f"Cannot read --text {path}: {err}.") from err
    train, held_out = split_tail(text)
    return Corpus(
        name=f"{Path(path).name} (--text)",
        train=train,
        held_out=held_out,
        train_source=f"the first {len(train)} characters",
        held_out_source=f"the last {len(held_out)} characters",
    )


def _join_rows(rows, column: str, limit: int = MAX_DATASET_CHARS) -> str:
    parts, size = [], 0
    for row in rows:
        text = row[column]
        if isinstance(text, str) and text.strip():
            parts.append(text)
            size += len(text)
            if size >= limit:
                break
    return "\n\n".join(parts)


def dataset_corpus(name: str, config: str | None = None, column: str = "text") -> Corpus:
    """``datasets.load_dataset(name, config)``: its train split to train on, its validation (or test) split
    held out, or the last ~10% of the train split's rows when it has neither."""
    import datasets

    try:
        loaded = datasets.load_dataset(name, config)
    except Exception as err:  # datasets raises many types (missing config, no network, bad name)
        raise CorpusError(f"datasets.load_dataset({name!r}, {config!r}) failed: {err}") from err
    splits = loaded if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    train_split = "train" if "train" in splits else next(iter(splits))
    train = splits[train_split]
    if column not in train.column_names:
        raise CorpusError(
            f"The dataset {name!r} has no column {column!r}; its columns are {train.column_names}. "
            "Pick one with `--text-column`."
        )
    held_out_split = next((s for s in ("validation", "test") if s in splits and s != train_split), None)
    if held_out_split is not None:
        held_out = splits[held_out_split]
        held_out_source = f"split {held_out_split!r}"
    else:
        cut = int(len(train) * (1 - HELD_OUT_FRACTION))
        if cut == 0 or cut == len(train):
            raise CorpusError(f"The dataset {name!r} has {len(train)} rows: too few to hold any out.")
        train, held_out = train.select(range(cut)), train.select(range(cut, len(train)))
        held_out_source = f"the last {len(held_out)} rows of split {train_split!r}"
    corpus = Corpus(
        name=f"{name}" + (f" ({config})" if config else "") + " (--dataset)",
        train=_join_rows(train, column),
        held_out=_join_rows(held_out, column),
        train_source=f"split {train_split!r}" + ("" if held_out_split else f", first {len(train)} rows"),
        held_out_source=held_out_source,
    )
    if not corpus.train.strip() or not corpus.held_out.strip():
        raise CorpusError(f"The dataset {name!r} has no text in column {column!r} on one side of the split.")
    return corpus


def load_corpus(
    text: Path | None = None,
    dataset: str | None = None,
    dataset_config: str | None = None,
    text_column: str = "text",
) -> Corpus:
    """The corpus the demo's options ask for: ``--text``, ``--dataset``, else the CPython documentation."""
    if text is not None and dataset is not None:
        raise CorpusError("Pass either --text or --dataset, not both.")
    if text is not None:
        return text_file_corpus(text)
    if dataset is not None:
        return dataset_corpus(dataset, dataset_config, text_column)
    return python_docs_corpus()


__all__ = [
    "ALTERNATIVES",
    "Corpus",
    "CorpusError",
    "corpora_cache",
    "dataset_corpus",
    "fetch_python_docs",
    "load_corpus",
    "python_docs_corpus",
    "read_sections",
    "split_tail",
    "text_file_corpus",
]
