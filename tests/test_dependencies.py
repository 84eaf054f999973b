"""The tested set (constraints.txt) agrees with the declared ranges (pyproject.toml), and an out-of-range
upstream is refused at import time with a message that names the package and the fix."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

import pytest

from peft_qfa._compat import versions

ROOT = Path(__file__).resolve().parent.parent


def _pins_tool():
    spec = importlib.util.spec_from_file_location("pins", ROOT / "tools" / "pins.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


pins = _pins_tool()


def test_the_tested_set_lies_inside_the_declared_ranges():
    assert pins.disagreements() == []
    pinned = pins.pinned()
    for package in (
        "torch",
        "transformers",
        "peft",
        "accelerate",
        "huggingface-hub",
        "datasets",
        "safetensors",
        "triton",
        "tokenizers",
    ):
        assert package in pinned, f"constraints.txt does not pin {package}"


def _pyproject_with(tmp_path: Path, dependencies: list[str]) -> Path:
    path = tmp_path / "pyproject.toml"
    lines = ", ".join(f'"{d}"' for d in dependencies)
    path.write_text(f'[project]\nname = "x"\ndependencies = [{lines}]\n', encoding="utf-8")
    return path


def test_a_pin_outside_its_range_or_a_missing_pin_is_reported(tmp_path):
    pyproject = _pyproject_with(
        tmp_path, ["transformers>=5.17,<6", "peft>=0.18", "triton>=3.6; sys_platform == 'nt'"]
    )
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(
        "# comment\ntransformers==4.57.6\nnumpy==2.0  # not declared: fine\n", encoding="utf-8"
    )
    problems = pins.disagreements(pyproject, constraints)
    assert problems == [
        "transformers==4.57.6 is pinned, outside the declared range '>=5.17,<6'",
        "peft (>=0.18) is declared in pyproject.toml but not pinned",
    ]  # triton's marker is false here, so its missing pin is not a problem
    constraints.write_text("transformers==5.24.0\nPEFT==0.21.2\n", encoding="utf-8")
    assert pins.disagreements(pyproject, constraints) == []


def test_floors_are_the_lower_bounds_and_every_range_has_one(tmp_path):
    pyproject = _pyproject_with(
        tmp_path, ["transformers>=5.17,<6", "peft~=0.18", "triton>=3.6; sys_platform == 'linux'"]
    )
    assert pins.floors(extras=(), pyproject=pyproject) == [
        "peft==0.18",
        "transformers==5.17",
        "triton==3.6; sys_platform == 'linux'",
    ]
    assert {line.split("==")[0] for line in pins.floors()} == set(pins.declared())
    with pytest.raises(ValueError, match="tqdm has no lower bound"):
        pins.floors(extras=(), pyproject=_pyproject_with(tmp_path, ["tqdm"]))


def test_the_installed_set_passes_the_import_time_check():
    assert versions.incompatible_dependencies() == []


def test_an_out_of_range_upstream_is_refused_with_the_pair_and_the_fix(monkeypatch):
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        versions.metadata,
        "requires",
        lambda name: ["transformers<6,>=5.17", "peft>=0.18", "evaluate; extra == 'x'"],
    )
    monkeypatch.setattr(
        versions.metadata, "version", lambda name: "5.16.0" if name == "transformers" else real_version(name)
    )
    with pytest.raises(versions.IncompatibleDependencyError) as error:
        versions.check_dependencies()
    message = str(error.value)
    assert "transformers 5.16.0 is installed; peft-qfa needs transformers<6,>=5.17" in message
    assert "pip install 'transformers<6,>=5.17'" in message and "peft 0." not in message


def test_an_uninstalled_source_tree_skips_the_check(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(versions.metadata, "requires", not_installed)
    assert versions.incompatible_dependencies() == []


def test_a_missing_upstream_is_named_too(monkeypatch):
    real_version = importlib.metadata.version

    def version(name):
        if name == "peft":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(versions.metadata, "requires", lambda name: ["peft>=0.19.1"])
    monkeypatch.setattr(versions.metadata, "version", version)
    assert versions.incompatible_dependencies() == ["peft is not installed; peft-qfa needs peft>=0.19.1"]
    with pytest.raises(versions.IncompatibleDependencyError, match=r"pip install 'peft>=0\.19\.1'"):
        versions.check_dependencies()
