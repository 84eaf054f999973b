"""Subnet search on the real SmolLM2-135M: ours vs the paper's two-stage search vs the best uniform subnet.

For each budget (average bits) it searches a QFA supernet with our strategy (per-group
sensitivities, a knapsack over the budget, a short evolutionary refinement) and with the paper's
two-stage [100, 50] search, both scored by the loss on the same search set, then reports each
chosen subnet's perplexity on held-out text (persuasion.txt), next to the best uniform-bit subnet
that fits, the search time per budget and the number of evaluations. It prints a table, writes the
Pareto plot (PNG) and all figures as JSON into ``--out``.

    python benchmarks/search_report.py                              # RTN supernet, fresh adapters
    python benchmarks/search_report.py --supernet runs/supernet/    # a trained supernet (+ adapters)

The search set (``--search-set``): ``saved`` is the text the supernet's training held back
(``qfa_search_data.safetensors``, written by ``peft-qfa train``), which is what a budget-only
``from_pretrained`` searches on; ``emma`` is the first ``--search-tokens`` tokens of emma.txt, a
training novel; ``auto`` (default) takes ``saved`` when the folder has it.

Without ``--supernet`` it builds an RTN (or ``--method gptq``) supernet of SmolLM2 with fresh QFA
adapters (zero-initialised B, so they do not change the outputs yet). Run it alone: it is a few
hundred forward passes of the 135M model. To use both cores of a small machine, split it over
processes that share ``--out`` with ``--merge`` (each process one thread, for example ours and the
paper's search at 2.5 bits in one, the paper's at 3.0 and 3.5 in the other): each adds its rows
and the last one prints the whole table and plot. Ours should search all budgets in one process,
since its sensitivities are shared by them.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa.checkpoint import SEARCH_DATA_NAME
from peft_qfa.search import (
    Budget,
    LossEvaluator,
    SearchResult,
    SensitivityKnapsackSearch,
    TwoStageSearch,
    plot_pareto,
    run_search,
)
from peft_qfa.testing import austen_texts, smollm2_path


def build_supernet(args, tokenizer):
    from peft import get_peft_model

    calibration = None
    if args.method == "gptq":
        train, _ = austen_texts()
        calibration = train[1][:200_000]
    config = peft_qfa.QFAQuantizationConfig(
        bits=(2, 3, 4),
        group_size=args.group_size,
        method=args.method,
        calibration=calibration,
        calibration_samples=args.calib_samples,
        calibration_seq_len=512,
        tokenizer=tokenizer,
    )
    supernet = AutoModelForCausalLM.from_pretrained(
        smollm2_path(), quantization_config=config, dtype=torch.float32
    )
    return get_peft_model(supernet, peft_qfa.QFAConfig(r=8, lora_alpha=16)).eval()


def token_slice(tokenizer, text: str, n: int, skip: int = 0) -> torch.Tensor:
    ids = tokenizer(text[: 8 * (n + skip) + 10_000], add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) < n + skip:
        raise ValueError(f"Need {n + skip} tokens, the text gives {len(ids)}.")
    return torch.tensor(ids[skip : skip + n])


def search_set(args, tokenizer) -> tuple[torch.Tensor, str]:
    """The search token ids and a line that says where they come from."""
    saved = Path(args.supernet) / SEARCH_DATA_NAME if args.supernet else None
    choice = args.search_set
    if choice == "auto":
        choice = "saved" if saved is not None and saved.is_file() else "emma"
    if choice == "saved":
        if saved is None or not saved.is_file():
            raise SystemExit(
                f"--search-set saved: no {SEARCH_DATA_NAME} in {args.supernet or '(no --supernet)'}."
            )
        ids = load_file(saved)["input_ids"].reshape(-1)
        return ids, f"{ids.numel()} tokens the supernet's training held back ({SEARCH_DATA_NAME})"
    train, _ = austen_texts()
    ids = token_slice(tokenizer, train[0], args.search_tokens)
    return ids, f"{args.search_tokens} tokens of emma.txt (a training novel)"


def load_report(path: Path, setup: dict, merge: bool) -> dict:
    """The report file to add to: the existing one when ``merge`` and it was made with the same setup."""
    if merge and path.is_file():
        report = json.loads(path.read_text())
        if report.get("setup") == setup:
            return report
        print(f"{path} was made with another setup ({report.get('setup')}); starting a new report.")
    return {"setup": setup, "rows": [], "results": {}}


def add_result(report: dict, key: str, result: SearchResult) -> None:
    """Store one strategy's result, replacing earlier results for the same budgets."""
    budgets = {str(c.budget) for c in result.choices}
    kept = [r for r in report["results"].get(key, []) if not budgets & {c["budget"] for c in r["choices"]}]
    report["results"][key] = [*kept, result.to_dict()]


def add_row(report: dict, row: dict) -> None:
    report["rows"] = [
        r for r in report["rows"] if (r["budget"], r["method"]) != (row["budget"], row["method"])
    ] + [row]


def print_table(report: dict) -> None:
    header = f"{'budget':>9} {'method':>15} {'avg bits':>8} {'MB':>7} {'search loss':>11} {'held-out ppl':>12} {'evals':>5} {'s/budget':>8}  bits per block"
    print(header)
    print("-" * len(header))
    method_order = {"ours": 0, "two-stage": 1}

    def order(row):
        budget = Budget.parse(row["budget"])
        return (budget.kind, budget.value, method_order.get(row["method"], 2), row["method"])

    for r in sorted(report["rows"], key=order):
        print(
            f"{r['budget']:>9} {r['method']:>15} {r['avg_bits']:8.3f} {r['mb']:7.1f} {r['search_loss']:11.4f} "
            f"{r['heldout_ppl']:12.3f} {r['evaluations']:5d} {r['seconds']:8.1f}  {r['bits']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--supernet", help="a saved supernet folder (with its adapters); default: build one")
    parser.add_argument("--method", choices=("rtn", "gptq"), default="rtn", help="when building: quantizer")
    parser.add_argument("--group-size", type=int, default=64, help="when building: quantization group size")
    parser.add_argument(
        "--calib-samples", type=int, default=32, help="when building with GPTQ: windows of 512"
    )
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.5, 3.0, 3.5])
    parser.add_argument(
        "--search-set",
        choices=("auto", "saved", "emma"),
        default="auto",
        help="saved: the supernet's held-back text; emma: a training novel; auto: saved when there is one",
    )
    parser.add_argument(
        "--search-tokens", type=int, default=2048, help="with --search-set emma: tokens of emma.txt"
    )
    parser.add_argument(
        "--heldout-tokens", type=int, default=8192, help="tokens of persuasion.txt for the report"
    )
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=("ours", "two-stage"),
        default=["ours", "two-stage"],
        help="which searches to run (ours: sensitivity-knapsack; two-stage: the paper's)",
    )
    parser.add_argument("--n-random", type=int, default=100, help="two-stage: coarse random subnets")
    parser.add_argument("--n-refine", type=int, default=50, help="two-stage: subnets in the shrunken space")
    parser.add_argument("--generations", type=int, default=2, help="ours: evolutionary rounds per budget")
    parser.add_argument("--children", type=int, default=6, help="ours: subnets per round")
    parser.add_argument(
        "--probe-tokens",
        type=int,
        default=1024,
        help="ours: sensitivity probes scored on the first N search tokens (0: all of them)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (on a busy 2-core machine one thread is faster than two)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add to OUT/search_report.json (same supernet and settings) instead of replacing it",
    )
    parser.add_argument("--out", default="benchmarks/out/search_report")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    start = time.perf_counter()
    if args.supernet:
        model = AutoModelForCausalLM.from_pretrained(
            args.supernet, dtype=torch.float32
        ).eval()  # + adapters if saved
    else:
        model = build_supernet(args, tokenizer)
    setup_seconds = time.perf_counter() - start
    space = peft_qfa.search_space(model)
    search_ids, search_label = search_set(args, tokenizer)
    _, heldout = austen_texts()
    heldout_ids = token_slice(tokenizer, heldout, args.heldout_tokens)
    search_eval = LossEvaluator(search_ids, seq_len=args.seq_len, batch_size=4)
    heldout_eval = LossEvaluator(heldout_ids, seq_len=args.seq_len, batch_size=4)
    budgets = [Budget("bits", b) for b in args.budgets]
    setup = {
        key: getattr(args, key)
        for key in (
            "supernet",
            "method",
            "group_size",
            "seq_len",
            "heldout_tokens",
            "n_random",
            "n_refine",
            "generations",
            "children",
            "probe_tokens",
            "seed",
        )
    }
    setup["search_set"] = search_label
    report_path = out / "search_report.json"

    results: dict[str, SearchResult] = {}
    if "ours" in args.strategies:
        probe_eval = None
        if 0 < args.probe_tokens < search_ids.numel():  # the probes only rank groups: fewer tokens do
            probe_eval = LossEvaluator(search_ids[: args.probe_tokens], seq_len=args.seq_len, batch_size=4)
        results["ours"] = run_search(
            model,
            space,
            budgets,
            search_eval,
            SensitivityKnapsackSearch(
                generations=args.generations,
                children=args.children,
                seed=args.seed,
                probe_evaluator=probe_eval,
            ),
        )
        print(
            f"ours done in {results['ours'].seconds:.0f} s ({results['ours'].n_evaluations} evaluations"
            + (
                f", {probe_eval.n_evaluations} of them probes on {args.probe_tokens} tokens"
                if probe_eval
                else ""
            )
            + f"):\n{results['ours'].table()}",
            flush=True,
        )
    if "two-stage" in args.strategies:
        paper_eval = LossEvaluator(search_ids, seq_len=args.seq_len, batch_size=4)  # own cache: fair counts
        results["two-stage"] = run_search(
            model,
            space,
            budgets,
            paper_eval,
            TwoStageSearch(n_random=args.n_random, n_refine=args.n_refine, seed=args.seed),
        )
        print(
            f"two-stage done in {results['two-stage'].seconds:.0f} s:\n{results['two-stage'].table()}",
            flush=True,
        )

    def row(budget, method, subnet, search_loss, evaluations, seconds):
        cost = space.cost(subnet)
        return {
            "budget": str(budget),
            "method": method,
            "avg_bits": cost.avg_bits,
            "mb": cost.bytes / 1e6,
            "search_loss": search_loss,
            "heldout_ppl": math.exp(heldout_eval.evaluate(model, subnet)),
            "evaluations": evaluations,
            "seconds": seconds,
            "bits": "".join(str(b) for b in subnet.values()),
        }

    rows = [
        row(choice.budget, name, choice.subnet, choice.score, choice.n_evaluations, choice.seconds)
        for name, result in results.items()
        for choice in result.choices
    ]
    for budget in budgets:
        uniform = max((b for b in space.all_bits if budget.fits(space.cost(space.uniform(b)))), default=None)
        if uniform is not None:
            subnet = space.uniform(uniform)
            rows.append(
                row(budget, f"uniform {uniform}-bit", subnet, search_eval.evaluate(model, subnet), 0, 0.0)
            )
    # read the report only now: a process beside this one may have written to it meanwhile
    report = load_report(report_path, setup, args.merge)
    for name, result in results.items():
        add_result(report, name, result)
    for new_row in rows:
        add_row(report, new_row)
    report["date"] = time.strftime("%Y-%m-%d %H:%M")
    report.setdefault("processes", []).append(
        {"args": vars(args), "setup_seconds": setup_seconds, "threads": torch.get_num_threads()}
    )
    report_path.write_text(json.dumps(report, indent=1))

    print(
        f"\nSmolLM2-135M-Instruct QFA supernet: {args.supernet or f'{args.method.upper()} g{args.group_size}, fresh adapters'}; "
        f"{len(space)} {space.granularity} groups; search set: {search_label}; held-out "
        f"{args.heldout_tokens} tokens of persuasion.txt, windows of {args.seq_len}"
    )
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
        f"setup {setup_seconds:.0f} s\n"
    )
    print_table(report)
    combined = {
        name: SearchResult.combine([SearchResult.from_dict(r, space) for r in parts])
        for name, parts in report["results"].items()
    }
    print(
        "\ntotal search time: "
        + ", ".join(
            f"{name} {r.seconds:.0f} s ({r.n_evaluations} evaluations)" for name, r in combined.items()
        )
    )
    if combined:
        first, *others = combined.items()
        png = plot_pareto(
            first[1],
            out / "pareto.png",
            title="SmolLM2-135M QFA: search loss vs average bits",
            others=others,
        )
        print(f"wrote {png} and {report_path}")


if __name__ == "__main__":
    main()
