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


def incompatible_dependencies(
    distribution: str = "peft-qfa", packages: tuple[str, ...] = CHECKED_AT_IMPORT
) -> list[str]:
    """One line per installed package of ``packages`` outside its declared range (empty when all fit)."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    try:
        ranges = _declared_ranges(distribution)
    except metadata.PackageNotFoundError:
        return []
    problems = []
    for package in packages:
        specifier = ranges.get(package)
        if not specifier:
            continue
        try:
            installed = metadata.version(package)
        except metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed; peft-qfa needs {package}{specifier}")
            continue
        if not SpecifierSet(specifier).contains(Version(installed), prereleases=True):
            problems.append(f"{package} {installed} is installed; peft-qfa needs {package}{specifier}")
    return problems


def check_dependencies(distribution: str = "peft-qfa") -> None:
    """Raise `IncompatibleDependencyError` listing every out-of-range package and the pip command to fix it."""
    problems = incompatible_dependencies(distribution)
    if problems:
        fix = " ".join(f"'{line.rsplit('needs ', 1)[1]}'" for line in problems)
        raise IncompatibleDependencyError(
            "peft-qfa cannot work with the installed packages: "
            + "; ".join(problems)
            + f". Install a compatible set with: pip install {fix} (or the tested set: "
            "pip install -c constraints.txt peft-qfa, with constraints.txt from the peft-qfa repository)."
        )


__all__ = ["IncompatibleDependencyError", "check_dependencies", "incompatible_dependencies"]

check_dependencies()
