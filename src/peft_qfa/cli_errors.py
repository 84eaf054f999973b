"""How the ``peft-qfa`` command line reports errors: one line, exit code 2, the traceback behind ``--debug``.

* A bad flag (argparse's own checks) prints ``peft-qfa CMD: error: MESSAGE (see peft-qfa CMD --help)``.
* A bad value, path or file found by the library (``ValueError``, ``TypeError``, ``OSError``,
  ``NotImplementedError``, ...) prints ``peft-qfa CMD: error: MESSAGE``; all exit with status 2.
* Anything else (a bug, out of memory) prints one line too, with exit status 1.
* ``--debug`` (anywhere on the line) re-raises instead, with the full traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

USAGE_ERROR = 2
INTERNAL_ERROR = 1
DEBUG_FLAG = "--debug"

# The library's own errors: a bad argument, path, file or combination. Exit status 2.
INPUT_ERRORS: tuple[type[BaseException], ...] = (ValueError, TypeError, OSError, NotImplementedError, KeyError)


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line (no usage block), exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def one_line(message: str, prog: str) -> str:
    """``message`` without a repeated ``prog:`` prefix and without line breaks."""
    text = " ".join(str(message).split())
    for prefix in (f"{prog}: ", "error: ", "peft-qfa: "):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    return text


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug``, and whether it was there."""
    argv = list(argv)
    debug = DEBUG_FLAG in argv
    return [a for a in argv if a != DEBUG_FLAG], debug


def run_reporting_errors(prog: str, run: Callable[[], int], debug: bool) -> int:
    """``run()``; its exceptions become one ``prog: error: ...`` line on stderr (see the module docstring)."""
    if debug:
        return run()
    try:
        return run()
    except KeyboardInterrupt:
        print(f"{prog}: interrupted.", file=sys.stderr)
        return 130
    except INPUT_ERRORS as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{prog}: error: {one_line(message, prog)}", file=sys.stderr)
        return USAGE_ERROR
    except Exception as err:  # noqa: BLE001 (the CLI's last line of defence: one line, details behind --debug)
        print(
            f"{prog}: error: {type(err).__name__}: {one_line(err, prog)} (rerun with {DEBUG_FLAG} for the traceback)",
            file=sys.stderr,
        )
        return INTERNAL_ERROR


__all__ = ["DEBUG_FLAG", "OneLineArgumentParser", "run_reporting_errors", "split_debug"]
