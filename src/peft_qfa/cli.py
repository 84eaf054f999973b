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

from .cli_errors import DEBUG_FLAG, OneLineArgumentParser, run_reporting_errors, split_debug

COMMANDS: dict[str, str] = {
    "train": "peft_qfa.train.cli",
    "search": "peft_qfa.search.cli",
    "export": "peft_qfa.exporters.cli",
    "push": "peft_qfa.deploy.push_cli",
}
"""Command name -> module implementing it."""


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineArgumentParser(
        prog="peft-qfa",
        description="Fine-tune a quantized LLM once as a 2/3/4-bit supernet (LLM-QFA), deploy it at any budget.",
        epilog=f"Errors are one line (exit status 2); {DEBUG_FLAG} anywhere on the line shows the full traceback.",
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
    argv, debug = split_debug(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    return int(run_reporting_errors(f"peft-qfa {args.command}", lambda: args._run(args), debug) or 0)


if __name__ == "__main__":
    sys.exit(main())
