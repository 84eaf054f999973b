"""The bad-input table: run every case of ``tests/reliability/bad_inputs.py`` and print the count table.

    PYTHONPATH=src:kernels/build/torch-universal python benchmarks/bad_inputs.py [--verbose]

Each case is judged as in the test (``clear``, ``late``, ``unclear``, ``multi-line``, ``traceback``,
``wrote``, ``silent``); the table counts them per surface (API, files, CLI).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reliability.bad_inputs import all_cases, build_fixtures, judge  # noqa: E402

VERDICTS = ("clear", "late", "unclear", "multi-line", "traceback", "wrote", "silent")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="Print every case's verdict and message.")
    args = parser.parse_args()
    from transformers.utils import logging

    from peft_qfa.testing import single_torch_thread

    logging.set_verbosity_error()
    counts: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="qfa-bad-inputs-") as root, single_torch_thread():
        fx = build_fixtures(Path(root))
        os.chdir(root)
        for case in all_cases():
            verdict, message = judge(case, fx)
            counts[case.surface, verdict] += 1
            if args.verbose or verdict != "clear":
                print(f"[{verdict}] {case.surface}: {case.name}: {message.splitlines()[-1] if message else ''}")
    surfaces = ("api", "files", "cli")
    print("\n| result | " + " | ".join(surfaces) + " | total |")
    print("| --- | " + " | ".join("---:" for _ in surfaces) + " | ---: |")
    for verdict in VERDICTS:
        row = [counts[s, verdict] for s in surfaces]
        print(f"| {verdict} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    totals = [sum(counts[s, v] for v in VERDICTS) for s in surfaces]
    print("| **all** | " + " | ".join(map(str, totals)) + f" | {sum(totals)} |")


if __name__ == "__main__":
    main()
