"""The Python examples of README.md and docs/: all of them parse, and README's quick start runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks(path: Path) -> list[str]:
    """The ```python fenced blocks of a markdown file, in order."""
    return _BLOCK.findall(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_every_python_example_parses(document):
    for number, block in enumerate(python_blocks(document)):
        compile(block, f"{document.name}, python block {number}", "exec")


@pytest.mark.slow
def test_readme_quick_start_runs_as_written(tmp_path):
    (block,) = python_blocks(ROOT / "README.md")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-c", block], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=3600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "quickstart" / "supernet" / "tokenizer.json").is_file()
    assert (tmp_path / "out" / "quickstart" / "model-3bit" / "model.safetensors").is_file()
    assert "A supernet keeps" in run.stdout  # the generation, prompt included
