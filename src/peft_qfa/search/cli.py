"""``peft-qfa search``: find the best subnet of a saved supernet for one or more budgets.

    peft-qfa search SUPERNET --budget 2.5 3.0 100MB --data heldout.txt [--out DIR]

``SUPERNET`` is a folder (or Hub id) written by ``peft-qfa train`` / ``peft_qfa.save_supernet``
(its adapters are loaded with it). ``--data`` (default: the token ids saved with the supernet,
``qfa_search_data.safetensors``) is text files (scored by held-out loss) or one
BIG-bench-style ``.json`` task (accuracy). Prints one line per budget and, with ``--out``,
writes ``search.json`` (every evaluation, the Pareto front) and ``pareto.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "Search a saved supernet for the best subnet under one or more bit or byte budgets."


def add_search_arguments(parser: argparse.ArgumentParser, data_required: bool = True) -> None:
    """The data and strategy options shared by ``search`` and ``export``."""
    parser.add_argument(
        "--data",
        nargs="+",
        required=data_required,
        help="Search data: text files (held-out loss) or one BIG-bench-style .json task (accuracy).",
    )
    parser.add_argument(
        "--tokenizer", help="Tokenizer path or id (default: the one saved with the supernet)."
    )
    parser.add_argument(
        "--strategy", default="sensitivity-knapsack", choices=("sensitivity-knapsack", "two-stage")
    )
    parser.add_argument(
        "--max-tokens", type=int, default=4096, help="Tokens of text to score on (default 4096)."
    )
    parser.add_argument("--seq-len", type=int, default=512, help="Window length for the loss (default 512).")
    parser.add_argument("--max-examples", type=int, help="Use only this many examples of a .json task.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--n-random", type=int, help="two-stage: random subnets of the first stage (default 100)."
    )
    parser.add_argument("--n-refine", type=int, help="two-stage: subnets of the second stage (default 50).")
    parser.add_argument(
        "--generations", type=int, help="sensitivity-knapsack: evolutionary rounds (default 2)."
    )
    parser.add_argument("--children", type=int, help="sensitivity-knapsack: subnets per round (default 6).")


def search_options(args: argparse.Namespace) -> dict:
    """Keyword arguments of :func:`peft_qfa.search_subnet` from the parsed flags (data excluded)."""
    options = {"strategy": args.strategy, "seed": args.seed}
    task = bool(args.data) and len(args.data) == 1 and args.data[0].endswith(".json")
    options.update(
        {"max_examples": args.max_examples}
        if task
        else {"max_tokens": args.max_tokens, "seq_len": args.seq_len}
    )
    for name in ("n_random", "n_refine", "generations", "children"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    return {k: v for k, v in options.items() if v is not None}


def read_data(paths: list[str]):
    """A ``.json`` task path as is, or the texts of the given files."""
    if len(paths) == 1 and paths[0].endswith(".json"):
        return paths[0]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"peft-qfa: no such data file(s): {missing}.")
    return [Path(p).read_text(encoding="utf-8-sig") for p in paths]


def budget_value(text: str) -> float | str:
    """A plain number is average bits (``3.0``); anything else is parsed as a budget string (``"90MB"``)."""
    try:
        return float(text)
    except ValueError:
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("supernet", help="Saved supernet folder (with its adapters) or Hub id.")
    parser.add_argument(
        "--budget", nargs="+", required=True, help="Budgets: average bits (3.0, 3.0bits) or sizes (100MB)."
    )
    add_search_arguments(parser, data_required=False)  # default: the search data saved with the supernet
    parser.add_argument("--out", help="Folder for search.json and pareto.png.")


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM

    from ..checkpoint import SEARCH_DATA_NAME, find_search_data
    from ..search import plot_pareto, search_subnet
    from .cli_checks import check_search_args

    check_search_args(args)  # before the (slow) load of the supernet
    budgets = [budget_value(b) for b in args.budget]
    model = AutoModelForCausalLM.from_pretrained(args.supernet)
    data = read_data(args.data) if args.data else find_search_data(model, args.supernet)
    if data is None:
        raise ValueError(f"give --data (texts or a .json task): `{args.supernet}` has no {SEARCH_DATA_NAME}.")
    result = search_subnet(model, budgets, data, tokenizer=args.tokenizer, **search_options(args))
    print(result.table())
    print(
        f"{result.n_evaluations} evaluations in {result.seconds:.1f} s ({result.strategy}, {result.metric})"
    )
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "search.json").write_text(json.dumps(result.to_dict(), indent=1))
        plot_pareto(result, out / "pareto.png", title=f"{args.supernet}: subnet search")
        print(f"wrote {out / 'search.json'} and {out / 'pareto.png'}")
    return 0
