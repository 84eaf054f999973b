"""``peft-qfa train``: the flags of :func:`peft_qfa.train_supernet`, parsed; the recipe is in :mod:`.recipe`.

Options come from flags, from a JSON file (``--config run.json``, keys are the flag names), or both
(flags win).
"""

from __future__ import annotations

import argparse
from typing import Any

from .recipe import OPTIONS, resolve_options, train_supernet

HELP = "Train a QFA supernet: every 2/3/4-bit subnet of a model in one Trainer run."


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE.json",
        help="JSON object of options (keys: the flag names, with - or _); flags given here override it.",
    )
    for option in OPTIONS:
        flag = "--" + option.name.replace("_", "-")
        default = "" if option.default is None else f" (default: {_shown(option.default)})"
        parser.add_argument(
            flag,
            dest=option.name,
            default=None,  # None = not given, so that a config file value is not overridden
            nargs="?" if option.const is not None else option.nargs,
            const=option.const,
            choices=option.choices,
            help=option.help + default,
        )


def run(args: argparse.Namespace) -> int:
    train_supernet(resolve_options(vars(args)))  # a bad option raises; the CLI prints it as one line (exit status 2)
    return 0
