"""Read the dependency ranges in pyproject.toml and the tested set in constraints.txt, and compare them.

The Makefile's install targets use this script (standard library only, so it runs before anything is
installed):

    python tools/pins.py floors            # `name==lowest` for every range: the floor install (make test-floor)
    python tools/pins.py check             # every pinned version inside its range, every dependency pinned
    python tools/pins.py without torch triton   # constraints.txt minus some packages (a user's own torch)

pyproject.toml holds the ranges a library user installs into their own environment; constraints.txt
holds the one set of versions the README's commands install, frozen from an environment in which the
fast suite passed (``make lock`` writes it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
CONSTRAINTS = ROOT / "constraints.txt"
# The extras the README's set-up installs (`pip install -e '.[dev,real,export]'`).
INSTALLED_EXTRAS = ("dev", "real", "export")

_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*?)\s*(?:;\s*(.*))?$")
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;#]+)")


def canonical(name: str) -> str:
    """PEP 503 name: `Foo_Bar.baz` and `foo-bar-baz` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(
    extras: tuple[str, ...] = INSTALLED_EXTRAS, pyproject: Path = PYPROJECT
) -> dict[str, tuple[str, str]]:
    """``{package: (specifier, marker)}`` for the dependencies and the named extras of pyproject.toml."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project.get("dependencies", []))
    for extra in extras:
        lines += project.get("optional-dependencies", {}).get(extra, [])
    found = {}
    for line in lines:
        match = _REQUIREMENT.match(line)
        if not match:
            raise ValueError(f"{pyproject}: cannot read the requirement {line!r}")
        found[canonical(match.group(1))] = (match.group(3).replace(" ", ""), (match.group(4) or "").strip())
    return found


def pinned(constraints: Path = CONSTRAINTS) -> dict[str, str]:
    """``{package: version}`` of every ``name==version`` line of a constraints file (comments skipped)."""
    pins = {}
    for line in constraints.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.split("#", 1)[0])
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def _lower_bound(specifier: str) -> str | None:
    for clause in specifier.split(","):
        match = re.fullmatch(r"(>=|~=|==)\s*([0-9][^,]*)", clause.strip())
        if match:
            return match.group(2)
    return None


def floors(extras: tuple[str, ...] = INSTALLED_EXTRAS, pyproject: Path = PYPROJECT) -> list[str]:
    """Constraint lines that hold every declared range at its lowest version."""
    lines = []
    for name, (specifier, marker) in sorted(declared(extras, pyproject).items()):
        low = _lower_bound(specifier)
        if low is None:
            raise ValueError(
                f"pyproject.toml: {name} has no lower bound ({specifier or 'any version'}); give it one."
            )
        lines.append(f"{name}=={low}" + (f"; {marker}" if marker else ""))
    return lines


def disagreements(pyproject: Path = PYPROJECT, constraints: Path = CONSTRAINTS) -> list[str]:
    """What is wrong between the two files: a pinned version outside its range, or a dependency not pinned.

    Needs ``packaging`` (installed with transformers) to evaluate ranges and markers.
    """
    from packaging.markers import Marker
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    pins = pinned(constraints)
    problems = []
    for name, (specifier, marker) in declared(pyproject=pyproject).items():
        if marker and not Marker(marker).evaluate():
            continue
        if name not in pins:
            problems.append(
                f"{name} ({specifier or 'any version'}) is declared in pyproject.toml but not pinned"
            )
        elif not SpecifierSet(specifier).contains(Version(pins[name]), prereleases=True):
            problems.append(f"{name}=={pins[name]} is pinned, outside the declared range {specifier!r}")
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["floors"]:
        print("\n".join(floors()))
    elif argv[:1] == ["check"]:
        problems = disagreements()
        for problem in problems:
            print(f"pins: {problem}", file=sys.stderr)
        return 1 if problems else 0
    elif argv[:1] == ["without"] and len(argv) > 1:
        dropped = {canonical(name) for name in argv[1:]}
        for line in CONSTRAINTS.read_text(encoding="utf-8").splitlines():
            match = _PIN.match(line.split("#", 1)[0])
            if not (match and canonical(match.group(1)) in dropped):
                print(line)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
