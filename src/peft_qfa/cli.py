"""The ``peft-qfa`` command line: ``peft-qfa <command> [options]``.

This module only dispatches. Each command lives in its own module, listed in :data:`COMMANDS`, which
exposes ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int`` (the exit status). A new
command is one line here plus its module; keep heavy imports inside ``run`` so that ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

COMMANDS: dict[str, str] = {
    "train": "peft_qfa.train.cli",
    "search": "peft_qfa.search.cli",
    "export": "peft_qfa.deploy.cli",
    "push": "peft_qfa.deploy.push_cli",
}
"""Command name -> module implementing it."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="peft-qfa",
        description="Fine-tune a quantized LLM once as a 2/3/4-bit supernet (LLM-QFA), deploy it at any budget.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        command = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the chosen command and return its exit status."""
    args = build_parser().parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
