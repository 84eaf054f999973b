"""The import contract of docs/ARCHITECTURE.md: dependencies point down only.

Every module under ``src/peft_qfa`` is mapped to a layer; an import (at module level or inside a
function) of a module in a higher layer fails this test, and so does an import between two
different packages of the same layer (``search`` and ``train`` are peers that know nothing of each
other). Entry points (the CLIs, the package ``__init__`` and the test helpers) sit on top.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "peft_qfa"
SRC = Path(__file__).resolve().parents[1] / "src" / PACKAGE

LAYERS: tuple[tuple[str, ...], ...] = (
    ("_compat", "quant", "atomic", "windows"),  # upstream patches, tensor math, atomic writes, BOS windows
    ("ops",),  # the backend dispatcher and quantized_linear
    ("supernet",),  # config, the layers (QFALinear, QFAPackedLinear), calibration, space, cost
    ("validate",),  # argument, path, file and vocabulary checks shared by the layers above
    ("tuner",),  # the "qfa" PEFT method
    ("checkpoint",),  # saving and loading a supernet folder
    ("search", "train"),  # peers
    ("deploy",),  # materialize, from_pretrained(budget=...), the Hub
    ("exporters",),  # a materialized subnet as HQQ or GGUF
    ("integrations",),  # transformers' quantizer and the other upstream entry points
    ("entry",),  # CLIs, peft_qfa/__init__.py, the test helpers
)
"""Bottom to top. A tuple holds peers: same rank, no imports between them."""

ENTRY_MODULES = (
    "peft_qfa",
    "peft_qfa.cli",
    "peft_qfa.cli_errors",
    "peft_qfa.lm_eval",
    "peft_qfa.testing",
    "peft_qfa.testing_hub",
)
"""Modules on top whatever package they sit in (besides every ``cli``/``*_cli`` module)."""

RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, root: Path = SRC) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The layer unit of a ``peft_qfa`` module: ``"entry"`` or its first sub-package/module name."""
    last = module.rsplit(".", 1)[-1]
    if module in ENTRY_MODULES or last == "cli" or last.endswith("_cli"):
        return "entry"
    parts = module.split(".")
    if len(parts) < 2 or parts[1] not in RANK:
        raise AssertionError(
            f"{module} belongs to no layer; add its package to LAYERS in tests/test_layers.py and to "
            "docs/ARCHITECTURE.md."
        )
    return parts[1]


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` for every import of a ``peft_qfa`` module in ``tree``."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == PACKAGE or (not node.module and node.level):
                # `from . import x` / `from peft_qfa import x`: x may be a sub-module
                found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, target))
    return [(line, name) for line, name in found if name == PACKAGE or name.startswith(PACKAGE + ".")]


def violations(root: Path = SRC) -> list[str]:
    """Every import in ``root`` that goes up a layer or sideways to a peer, as readable lines."""
    out = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source = unit_of(module)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            if target == PACKAGE:
                target_unit = "entry"
            else:
                sub = target.split(".")[1]
                if sub not in RANK and sub not in ("cli", "testing", "testing_hub"):
                    continue  # a name imported from the package root, e.g. `from peft_qfa import __version__`
                target_unit = unit_of(target)
            if target_unit == source:
                continue
            if RANK[target_unit] > RANK[source]:
                out.append(f"{path.relative_to(root.parent)}:{line}: {source} imports {target} ({target_unit}, a higher layer)")
            elif RANK[target_unit] == RANK[source]:
                out.append(f"{path.relative_to(root.parent)}:{line}: {source} imports its peer {target}")
    return out


def test_imports_point_down_only():
    assert violations() == []


def test_every_layer_exists():
    """A layer named here but missing from the source would make the contract vacuous."""
    units = {unit_of(module_name(p)) for p in SRC.rglob("*.py")}
    assert set(RANK) == units


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / PACKAGE
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"supernet/quantizer.py": "def f():\n    from ..deploy.loading import x\n"}, "supernet imports peft_qfa.deploy.loading"),
        ({"quant/grid.py": "import peft_qfa.supernet.layer\n"}, "quant imports peft_qfa.supernet.layer"),
        ({"train/cli_recipe.py": "from ..search import budget\n"}, "train imports its peer peft_qfa.search"),
        ({"deploy/loading.py": "from peft_qfa import integrations\n"}, "deploy imports peft_qfa.integrations"),
        ({"tuner/model.py": "from .. import cli\n"}, "tuner imports peft_qfa.cli (entry"),
    ],
)
def test_a_planted_violation_is_caught(tmp_path, files, expected):
    root = _tree(tmp_path, {"__init__.py": "", **files})
    found = violations(root)
    assert len(found) == 1 and expected in found[0], found


def test_downward_and_entry_imports_pass(tmp_path):
    root = _tree(
        tmp_path,
        {
            "__init__.py": "from .deploy import materialize\n",
            "deploy/loading.py": "from ..search.api import search_subnet\nfrom . import hub\n",
            "deploy/cli.py": "from ..integrations import quantizer\n",
            "integrations/quantizer.py": "def f():\n    from ..deploy.loading import x\n",
        },
    )
    assert violations(root) == []
