"""The demo's corpus helpers (examples/demo_corpus.py) on tiny fake data: no network, no apt, no model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def corpus_module():
    """examples/ is no package: load the file, registered in sys.modules while it runs (dataclasses need it)."""
    spec = importlib.util.spec_from_file_location("demo_corpus", EXAMPLES / "demo_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def fake_doc_tree(root: Path) -> Path:
    """A cached corpus as ``fetch_python_docs`` leaves it: ``python3-doc/_sources/<section>/*.rst.txt``."""
    sources = root / "python3-doc" / "_sources"
    pages = {
        "tutorial/b.rst.txt": "tutorial page b",
        "tutorial/a.rst.txt": "tutorial page a",
        "howto/sub/deep.rst.txt": "howto deep page",
        "howto/notes.txt": "not a reST source",
        "faq/general.rst.txt": "faq page",
        "library/os.rst.txt": "library page",
    }
    for name, text in pages.items():
        (sources / name).parent.mkdir(parents=True, exist_ok=True)
        (sources / name).write_text(text, encoding="utf-8")
    (sources.parent / "PACKAGE").write_text("python3.11-doc_3.11.2_all.deb\n", encoding="utf-8")
    return sources


def test_python_docs_split_by_section(corpus_module, tmp_path):
    corpus = corpus_module.python_docs_corpus(fake_doc_tree(tmp_path))
    assert corpus.train == "tutorial page a\n\ntutorial page b\n\nhowto deep page"
    assert corpus.held_out == "faq page"
    assert "library page" not in corpus.train + corpus.held_out
    assert "python3.11-doc_3.11.2_all.deb" in corpus.name
    assert (corpus.train_source, corpus.held_out_source) == ("tutorial/ + howto/", "faq/")


def test_a_cached_corpus_needs_no_apt(corpus_module, tmp_path, monkeypatch):
    sources = fake_doc_tree(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    assert corpus_module.fetch_python_docs(tmp_path) == sources


def test_without_apt_the_error_names_the_alternatives(corpus_module, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-binaries-here"))
    with pytest.raises(corpus_module.CorpusError, match="not installed") as err:
        corpus_module.fetch_python_docs(tmp_path / "empty-cache")
    assert "--text FILE" in str(err.value) and "--dataset NAME" in str(err.value)
    assert not (tmp_path / "empty-cache" / "python3-doc").exists()


def test_missing_sections_are_an_error(corpus_module, tmp_path):
    (tmp_path / "_sources" / "tutorial").mkdir(parents=True)
    with pytest.raises(corpus_module.CorpusError, match="No \\*.rst.txt files"):
        corpus_module.read_sections(tmp_path / "_sources", ("tutorial", "howto"))


def test_split_tail_cuts_at_a_line_break_near_ten_percent(corpus_module):
    text = "".join(f"line {i:02d}\n" for i in range(50))  # 400 characters, 8 per line
    head, tail = corpus_module.split_tail(text, 0.1)
    assert head + tail == text
    assert head.endswith("\n") and tail.startswith("line 46")
    assert 0.08 <= len(tail) / len(text) <= 0.1
    head, tail = corpus_module.split_tail("x" * 100, 0.1)  # no line break: cut at the mark
    assert (len(head), len(tail)) == (90, 10)
    with pytest.raises(corpus_module.CorpusError, match="too short"):
        corpus_module.split_tail("one line only\n", 0.1)


def test_text_file_corpus(corpus_module, tmp_path):
    path = tmp_path / "book.txt"
    path.write_text("\ufeff" + "".join(f"sentence number {i}.\n" for i in range(40)), encoding="utf-8")
    corpus = corpus_module.load_corpus(text=path)
    assert not corpus.train.startswith("\ufeff")
    assert corpus.held_out.startswith("sentence number 37.")
    assert corpus.train.endswith("sentence number 36.\n")
    with pytest.raises(corpus_module.CorpusError, match="Cannot read"):
        corpus_module.load_corpus(text=tmp_path / "missing.txt")
    with pytest.raises(corpus_module.CorpusError, match="either --text or --dataset"):
        corpus_module.load_corpus(text=path, dataset="anything")


def test_dataset_corpus_from_a_local_folder(corpus_module, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "cache"))
    with_validation = tmp_path / "with_validation"
    with_validation.mkdir()
    (with_validation / "train.txt").write_text("train row one\ntrain row two\n", encoding="utf-8")
    (with_validation / "validation.txt").write_text("held row\n", encoding="utf-8")
    corpus = corpus_module.dataset_corpus(str(with_validation))
    assert corpus.train == "train row one\n\ntrain row two"
    assert corpus.held_out == "held row"
    assert corpus.held_out_source == "split 'validation'"

    train_only = tmp_path / "train_only"
    train_only.mkdir()
    (train_only / "train.txt").write_text("".join(f"row {i}\n" for i in range(20)), encoding="utf-8")
    corpus = corpus_module.dataset_corpus(str(train_only))
    assert corpus.held_out == "row 18\n\nrow 19"
    assert corpus.train.endswith("row 17") and "row 18" not in corpus.train
    with pytest.raises(corpus_module.CorpusError, match="no column 'body'"):
        corpus_module.dataset_corpus(str(train_only), column="body")
