"""Refuse, at import time, an installed dependency outside the range this package declares.

pip keeps the declared ranges when it installs, but an environment can drift afterwards (a later
``pip install transformers==...``, ``--no-deps``, a system image). An out-of-range upstream then fails
deep inside its own code, with a message that never names the package pair. This check reads the
ranges from our own installed metadata (the same ones pyproject.toml declares), so there is one
source of truth, and turns a mismatch into one ``ImportError`` that names the package, the installed
version, the range and the command that fixes it.

Importing this module runs the check (``peft_qfa/_compat/__init__.py`` imports it first). Running from a
source tree that was never installed (no metadata) skips it.
"""

from __future__ import annotations

import importlib.metadata as metadata

# The packages ``import peft_qfa`` imports; the others are checked by their own users (pip, pytest).
CHECKED_AT_IMPORT = ("torch", "transformers", "peft", "safetensors", "huggingface-hub")


class IncompatibleDependencyError(ImportError):
    """An installed package is outside the version range peft-qfa declares for it."""


def _declared_ranges(distribution: str) -> dict[str, str]:
    """``{package: specifier}`` of ``distribution``'s unconditional requirements (extras left out)."""
    from packaging.requirements import Requirement

    ranges = {}
    for line in metadata.requires(distribution) or []:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        ranges[requirement.name.lower().replace("_", "-")] = str(requirement.specifier)
    return ranges


def _out_of_range(distribution: str, packages: tuple[str, ...]) -> list[tuple[str, str | None, str]]:
    """``(package, installed version or None, declared requirement)`` for each package outside its range."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    try:
        ranges = _declared_ranges(distribution)
    except metadata.PackageNotFoundError:
        return []
    found = []
    for package in packages:
        specifier = ranges.get(package)
        if not specifier:
            continue
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed = None
        if installed is None or not SpecifierSet(specifier).contains(Version(installed), prereleases=True):
            found.append((package, installed, package + specifier))
    return found


def incompatible_dependencies(
    distribution: str = "peft-qfa", packages: tuple[str, ...] = CHECKED_AT_IMPORT
) -> list[str]:
    """One line per installed package of ``packages`` outside its declared range (empty when all fit)."""
    return [_describe(*found) for found in _out_of_range(distribution, packages)]


def _describe(package: str, installed: str | None, requirement: str) -> str:
    state = "is not installed" if installed is None else f"{installed} is installed"
    return f"{package} {state}; peft-qfa needs {requirement}"


def check_dependencies(distribution: str = "peft-qfa") -> None:
    """Raise `IncompatibleDependencyError` listing every out-of-range package and the pip command to fix it."""
    found = _out_of_range(distribution, CHECKED_AT_IMPORT)
    if found:
        fix = " ".join(f"'{requirement}'" for _, _, requirement in found)
        raise IncompatibleDependencyError(
            "peft-qfa cannot work with the installed packages: "
            + "; ".join(_describe(*item) for item in found)
            + f". Install a compatible set with: pip install {fix} (or the tested set: "
            "pip install -c constraints.txt peft-qfa, with constraints.txt from the peft-qfa repository)."
        )


__all__ = ["IncompatibleDependencyError", "check_dependencies", "incompatible_dependencies"]

check_dependencies()
