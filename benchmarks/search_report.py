"""Subnet search on the real SmolLM2-135M: ours vs the paper's two-stage search vs the best uniform subnet.

For each budget (average bits) it searches a QFA supernet with our strategy (per-group
sensitivities, a knapsack over the budget, a short evolutionary refinement) and with the paper's
two-stage [100, 50] search, both scored by the loss on a small search set (the first
``--search-tokens`` tokens of a *training* novel), then reports each chosen subnet's perplexity on
held-out text (persuasion.txt), next to the best uniform-bit subnet that fits, the search time
per budget and the number of evaluations. It prints a table, writes the Pareto plot (PNG) and all
figures as JSON into ``--out``.

    python benchmarks/search_report.py                              # RTN supernet, fresh adapters
    python benchmarks/search_report.py --supernet runs/supernet/    # a trained supernet (+ adapters)

Without ``--supernet`` it builds an RTN (or ``--method gptq``) supernet of SmolLM2 with fresh QFA
adapters (zero-initialised B, so they do not change the outputs yet). Run it alone: it is a few
hundred forward passes of the 135M model.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa.search import (
    Budget,
    LossEvaluator,
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
        "--search-tokens", type=int, default=2048, help="search set: tokens of a training novel"
    )
    parser.add_argument(
        "--heldout-tokens", type=int, default=8192, help="tokens of persuasion.txt for the report"
    )
    parser.add_argument("--seq-len", type=int, default=512)
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
    parser.add_argument(
        "--no-two-stage", action="store_true", help="skip the paper's search (e.g. to time ours alone)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (on a busy 2-core machine one thread is faster than two)",
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
    train, heldout = austen_texts()
    search_ids = token_slice(tokenizer, train[0], args.search_tokens)  # emma.txt: a training novel
    heldout_ids = token_slice(tokenizer, heldout, args.heldout_tokens)
    search_eval = LossEvaluator(search_ids, seq_len=args.seq_len, batch_size=4)
    heldout_eval = LossEvaluator(heldout_ids, seq_len=args.seq_len, batch_size=4)
    budgets = [Budget("bits", b) for b in args.budgets]
    probe_eval = None
    if 0 < args.probe_tokens < args.search_tokens:  # the probes only rank groups: fewer tokens do
        probe_eval = LossEvaluator(search_ids[: args.probe_tokens], seq_len=args.seq_len, batch_size=4)

    ours = run_search(
        model,
        space,
        budgets,
        search_eval,
        SensitivityKnapsackSearch(
            generations=args.generations, children=args.children, seed=args.seed, probe_evaluator=probe_eval
        ),
    )
    print(f"ours done in {ours.seconds:.0f} s:\n{ours.table()}", flush=True)
    search_eval_paper = LossEvaluator(
        search_ids, seq_len=args.seq_len, batch_size=4
    )  # own cache: fair counts
    paper = None
    if not args.no_two_stage:
        paper = run_search(
            model,
            space,
            budgets,
            search_eval_paper,
            TwoStageSearch(n_random=args.n_random, n_refine=args.n_refine, seed=args.seed),
        )

    rows = []
    for budget in budgets:
        uniform = max((b for b in space.all_bits if budget.fits(space.cost(space.uniform(b)))), default=None)
        candidates = [("ours", ours.best(budget))] + ([("two-stage", paper.best(budget))] if paper else [])
        for name, choice in candidates:
            rows.append(
                {
                    "budget": str(budget),
                    "method": name,
                    "avg_bits": choice.cost.avg_bits,
                    "mb": choice.cost.bytes / 1e6,
                    "search_loss": choice.score,
                    "heldout_ppl": math.exp(heldout_eval.evaluate(model, choice.subnet)),
                    "evaluations": choice.n_evaluations,
                    "seconds": choice.seconds,
                    "bits": "".join(str(b) for b in choice.subnet.values()),
                }
            )
        if uniform is not None:
            subnet = space.uniform(uniform)
            rows.append(
                {
                    "budget": str(budget),
                    "method": f"uniform {uniform}-bit",
                    "avg_bits": space.cost(subnet).avg_bits,
                    "mb": space.cost(subnet).bytes / 1e6,
                    "search_loss": search_eval.evaluate(model, subnet),
                    "heldout_ppl": math.exp(heldout_eval.evaluate(model, subnet)),
                    "evaluations": 0,
                    "seconds": 0.0,
                    "bits": "".join(str(b) for b in subnet.values()),
                }
            )

    print(
        f"\nSmolLM2-135M-Instruct QFA supernet: {args.supernet or f'{args.method.upper()} g{args.group_size}, fresh adapters'}; "
        f"{len(space)} {space.granularity} groups; search set {args.search_tokens} tokens of emma.txt, held-out "
        f"{args.heldout_tokens} tokens of persuasion.txt, windows of {args.seq_len}"
    )
    print(
        f"machine: {platform.node()} {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}; "
        f"setup {setup_seconds:.0f} s\n"
    )
    header = f"{'budget':>9} {'method':>15} {'avg bits':>8} {'MB':>7} {'search loss':>11} {'held-out ppl':>12} {'evals':>5} {'s/budget':>8}  bits per block"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['budget']:>9} {r['method']:>15} {r['avg_bits']:8.3f} {r['mb']:7.1f} {r['search_loss']:11.4f} "
            f"{r['heldout_ppl']:12.3f} {r['evaluations']:5d} {r['seconds']:8.1f}  {r['bits']}"
        )
    print(
        f"\ntotal search time: ours {ours.seconds:.0f} s ({ours.n_evaluations} evaluations"
        + (
            f", {probe_eval.n_evaluations} of them sensitivity probes on {args.probe_tokens} tokens"
            if probe_eval
            else ""
        )
        + ")"
        + (f", two-stage {paper.seconds:.0f} s ({paper.n_evaluations} evaluations)" if paper else "")
    )

    png = plot_pareto(
        ours,
        out / "pareto.png",
        title="SmolLM2-135M QFA: search loss vs average bits",
        others=[("two-stage", paper)] if paper else [],
    )
    report = {
        "args": vars(args),
        "rows": rows,
        "ours": ours.to_dict(),
        "two_stage": paper.to_dict() if paper else None,
        "setup_seconds": setup_seconds,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    (out / "search_report.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {png} and {out / 'search_report.json'}")


if __name__ == "__main__":
    main()
