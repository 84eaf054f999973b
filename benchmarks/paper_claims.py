"""LLM-QFA's claims at small scale: SmolLM2-135M, Austen text, one table, one plot, plain verdicts.

Every method gets the same data and recipe (r=8, alpha 16, lr 2e-4 constant, clip 0.3, batch
``--batch-size`` x ``--seq-len`` tokens, seed 0, the same initial adapters), on the same base
supernet (``--base``, GPTQ by default as in the paper; bits 2/3/4, group 64):

- PTQ: the RTN and the GPTQ supernet at uniform 2, 3 and 4 bits, no adapters;
- per-bit QA-LoRA: three runs of ``--steps`` steps, each training one uniform bit-width
  (the ``fixed`` schedule: exactly QA-LoRA on that bit-width's weights), 3N steps in all;
- QFA: one run of N steps with the resource-balanced scheduler and decoupled adapters;
- ablations, N steps each: the uniform sampler, shared adapters (one per layer for all
  bit-widths), the sandwich rule;
- mixed budgets (``--budgets``, average bits) from each QFA run through our search
  (sensitivities + knapsack + evolution, scored on 2,048 tokens of emma.txt, a training novel);
- the variants that learn the quantizer (``QFAConfig(variant=...)``): PEQA, L4Q and LR-QAT, each as
  three per-bit runs (``peqa-2`` ...) and one supernet run (``qfa-peqa`` ...), with the same recipe;
  their own table reports the step time relative to QA-LoRA's run of the same setting.

Reported per (method, subnet): held-out perplexity on persuasion.txt (first ``--eval-tokens``
tokens, windows of 512), BIG-bench general_knowledge accuracy (summed log-likelihood of each
choice), training wall time and peak RSS while training. The script then checks the paper's
claims against the figures and says in words which held.

    python benchmarks/paper_claims.py                       # everything (about 1-1.5 h on 2 cores)
    python benchmarks/paper_claims.py --steps 2 --eval-tokens 1024 --max-examples 8 \\
        --runs qfa qalora-3 --budgets 2.5 --out /tmp/claims_smoke   # a quick pass through the code

Results go to ``--out`` (``results.json``, ``table.md``, ``pareto.png``). With ``--reuse`` a run
already in ``results.json`` is not repeated (to finish an interrupted benchmark, or to split the runs
over two processes that share ``--out``; ``--reuse --no-ptq --runs`` with no names only reports).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from datetime import date
from pathlib import Path

import torch
from _common import cached_supernet, reset_peak_rss, status_mib
from datasets import Dataset
from peft import get_peft_model
from train_schedules import train
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFAConfig
from peft_qfa.search import (
    Budget,
    LossEvaluator,
    MultipleChoiceEvaluator,
    SensitivityKnapsackSearch,
    run_search,
)
from peft_qfa.testing import austen_texts, bigbench_task, smollm2_path
from peft_qfa.train.recipe import token_blocks

BITS = (2, 3, 4)
# name -> (schedule, sampler options, adapter options)
RUNS = {
    "qalora-2": ("fixed", {"subnet": 2}, {}),
    "qalora-3": ("fixed", {"subnet": 3}, {}),
    "qalora-4": ("fixed", {"subnet": 4}, {}),
    "qfa": ("resource-balanced", {}, {}),
    "qfa-uniform": ("uniform", {}, {}),
    "qfa-shared": ("resource-balanced", {}, {"shared_adapters": True}),
    "qfa-sandwich": ("sandwich", {}, {}),
}
VARIANTS = {"peqa": "peqa", "l4q": "l4q", "lrqat": "lr-qat"}  # run-name stem -> QFAConfig(variant=...)
for _stem, _variant in VARIANTS.items():
    RUNS.update({f"{_stem}-{b}": ("fixed", {"subnet": b}, {"variant": _variant}) for b in BITS})
    RUNS[f"qfa-{_stem}"] = ("resource-balanced", {}, {"variant": _variant})
QFA_RUNS = [name for name in RUNS if name.startswith("qfa")]


class Scorer:
    """Held-out perplexity and multiple-choice accuracy of one model's subnets (fresh caches per model)."""

    def __init__(self, model, data):
        self.model = model
        self.loss = LossEvaluator(data["heldout_ids"], seq_len=512, batch_size=4)
        self.accuracy = MultipleChoiceEvaluator(data["task"], data["tokenizer"], max_examples=data["max_examples"])

    def row(self, subnet, **extra) -> dict:
        space = peft_qfa.search_space(self.model)
        return {
            "avg_bits": round(space.cost(subnet).avg_bits, 4),
            "ppl": math.exp(self.loss.evaluate(self.model, subnet)),
            "accuracy": self.accuracy.evaluate(self.model, subnet),
            "bits": dict(subnet),
            **extra,
        }

    def release(self):
        self.loss.release()
        self.accuracy.release()


def austen_data(tokenizer, seq_len: int, eval_tokens: int):
    """The five training novels, their training blocks, and the first ``eval_tokens`` held-out tokens."""
    train_texts, heldout = austen_texts()
    blocks = token_blocks(Dataset.from_dict({"text": train_texts}), tokenizer, seq_len)
    blocks.set_format("torch")
    heldout_ids = tokenizer(heldout[: 8 * eval_tokens], add_special_tokens=False)["input_ids"][:eval_tokens]
    return train_texts, blocks, heldout_ids


def load_supernet(folder):
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)


def ptq_rows(method, data) -> list[dict]:
    """Uniform 2/3/4-bit subnets of a bare supernet: post-training quantization, no adapters."""
    model = load_supernet(cached_supernet(method)).eval()
    space = peft_qfa.search_space(model)
    scorer = Scorer(model, data)
    rows = [scorer.row(space.uniform(bits), budget=f"uniform {bits}") for bits in BITS]
    scorer.release()
    return rows


def training_run(name, args, data) -> dict:
    """Train fresh adapters on the base supernet with the run's schedule, then score its subnets."""
    schedule, sampler_options, adapter_options = RUNS[name]
    torch.manual_seed(args.seed)  # the same initial adapters for every run
    model = get_peft_model(
        load_supernet(data["base_folder"]), QFAConfig(r=args.r, lora_alpha=args.lora_alpha, **adapter_options)
    )
    reset_peak_rss()
    start = time.perf_counter()
    callback, _, _ = train(model, data["blocks"], schedule, args, f"{args.out}/runs/{name}", args.steps, **sampler_options)
    seconds, peak = time.perf_counter() - start, status_mib("VmHWM")
    model.eval()
    space = peft_qfa.search_space(model)
    if adapter_options.get("variant", "qa-lora") != "qa-lora":
        trained = [sampler_options["subnet"]] if schedule == "fixed" else BITS
        rows = [deployed_row(model, space.uniform(bits), data, budget=f"uniform {bits}") for bits in trained]
        return {"train_seconds": seconds, "steps": args.steps, "train_peak_mib": peak, "rows": rows,
                "bit_counts": callback.bit_counts}
    scorer = Scorer(model, data)
    if schedule == "fixed":
        rows = [scorer.row(space.uniform(sampler_options["subnet"]), budget=f"uniform {sampler_options['subnet']}")]
    else:
        rows = [scorer.row(space.uniform(bits), budget=f"uniform {bits}") for bits in BITS]
        if name in args.search_runs:
            rows += searched_rows(model, space, scorer, args, data)
    scorer.release()
    return {
        "train_seconds": seconds,
        "steps": args.steps,
        "train_peak_mib": peak,
        "rows": rows,
        "bit_counts": callback.bit_counts,
    }


def deployed_row(model, subnet, data, **extra) -> dict:
    """Score the materialized ``subnet``: for a variant that learns the quantizer it computes what the trained
    model computes there (``tests/tuner/test_tuner_variants.py``), and its packed layers take the search's
    cached weights, where the trained model would re-quantize every weight on every forward pass."""
    packed = peft_qfa.materialize(model, subnet)
    scorer = Scorer(packed, data)
    row = scorer.row(peft_qfa.get_subnet(packed), **extra)
    row["avg_bits"] = round(peft_qfa.search_space(model).cost(subnet).avg_bits, 4)
    scorer.release()
    return row


def searched_rows(model, space, scorer, args, data) -> list[dict]:
    """Our search for each mixed budget (scored on a training novel), then the held-out figures."""
    search_eval = LossEvaluator(data["search_ids"], seq_len=512, batch_size=4)
    probe_eval = LossEvaluator(data["search_ids"][:1024], seq_len=512, batch_size=4)
    strategy = SensitivityKnapsackSearch(generations=2, children=6, seed=args.seed, probe_evaluator=probe_eval)
    result = run_search(model, space, [Budget("bits", b) for b in args.budgets], search_eval, strategy)
    search_eval.release()
    probe_eval.release()
    rows = []
    for budget in args.budgets:
        choice = result.best(Budget("bits", budget))
        rows.append(scorer.row(choice.subnet, budget=f"search {budget}", search_seconds=choice.seconds))
    return rows


# ---------------------------------------------------------------------------------------------- claims


def ppl(results, run, budget):
    for row in results.get(run, {}).get("rows", []):
        if row["budget"] == budget:
            return row["ppl"]
    return None


def verdicts(results, budgets) -> list[tuple[str, bool | None, str]]:
    """Each paper claim checked here as (claim, held?, the figures behind it); ``None`` when a run is missing."""
    out = []
    times = [results.get(f"qalora-{b}", {}).get("train_seconds") for b in BITS]
    qfa_time = results.get("qfa", {}).get("train_seconds")
    for bits in BITS:
        ours, per_bit = ppl(results, "qfa", f"uniform {bits}"), ppl(results, f"qalora-{bits}", f"uniform {bits}")
        held = None if ours is None or per_bit is None else ours <= 1.03 * per_bit
        figures = "missing" if held is None else f"QFA {ours:.2f} vs QA-LoRA {per_bit:.2f} ({ours / per_bit - 1:+.1%})"
        out.append((f"QFA within 3% of per-bit QA-LoRA at {bits} bits", held, figures))
    if qfa_time and all(times):
        share = qfa_time / sum(times)
        out.append(("QFA trains in a third of the per-bit runs' total time", share <= 0.4,
                    f"{qfa_time / 60:.1f} min vs {sum(times) / 60:.1f} min ({share:.2f}x)"))
    for bits in (2, 3):
        ours, gptq = ppl(results, "qfa", f"uniform {bits}"), ppl(results, "ptq-gptq", f"uniform {bits}")
        held = None if ours is None or gptq is None else ours <= 0.5 * gptq
        figures = "missing" if held is None else f"QFA {ours:.2f} vs GPTQ {gptq:.2f} ({ours / gptq:.2f}x)"
        out.append((f"QFA beats GPTQ PTQ at {bits} bits by a wide margin (at least 2x lower ppl)", held, figures))
    for bits in (2, 4):
        ours, uniform = ppl(results, "qfa", f"uniform {bits}"), ppl(results, "qfa-uniform", f"uniform {bits}")
        held = None if ours is None or uniform is None else ours < uniform
        figures = "missing" if held is None else f"{ours:.2f} vs {uniform:.2f}"
        out.append((f"resource-balanced beats the uniform sampler at {bits} bits", held, figures))
    labels = [f"uniform {b}" for b in BITS] + [f"search {b}" for b in budgets]
    pairs = [(label, ppl(results, "qfa", label), ppl(results, "qfa-shared", label)) for label in labels]
    pairs = [(label, a, b) for label, a, b in pairs if a is not None and b is not None]
    if pairs:
        losses = [label for label, a, b in pairs if a >= b]
        out.append(("decoupled adapters beat shared adapters at every budget", not losses,
                    "; ".join(f"{label}: {a:.1f} vs {b:.1f}" for label, a, b in pairs)))
    mixed, two, three = (ppl(results, "qfa", label) for label in ("search 2.5", "uniform 2", "uniform 3"))
    if None not in (mixed, two, three):
        out.append(("searched 2.5-bit subnet beats uniform 2-bit by more than half the 2-to-3-bit gap",
                    two - mixed > (two - three) / 2,
                    f"2.5 mixed {mixed:.1f}, uniform 2 {two:.1f}, uniform 3 {three:.1f}: gain {two - mixed:.1f} "
                    f"vs half-gap {(two - three) / 2:.1f}"))
    return out


def variant_rows(results):
    """``(method, setting, run, QA-LoRA run of the same setting)`` of the variant table, in order."""
    for method, stem in (("qa-lora", "qalora"), *((v, s) for s, v in VARIANTS.items())):
        for bits in BITS:
            yield method, f"per-bit {bits}", f"{stem}-{bits}", f"qalora-{bits}"
        yield method, "supernet", "qfa" if stem == "qalora" else f"qfa-{stem}", "qfa"


def variant_table(results) -> str:
    """The variants next to QA-LoRA: ppl, accuracy, seconds per step (and its ratio to QA-LoRA's), peak RSS."""
    lines = [
        "| method | run | subnet | held-out ppl | GK accuracy | s/step | step time vs QA-LoRA | train peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, setting, name, reference in variant_rows(results):
        run, ref = results.get(name), results.get(reference)
        if not run or "rows" not in run:
            continue
        step = run["train_seconds"] / run["steps"]
        ratio = f"{step / (ref['train_seconds'] / ref['steps']):.2f}x" if ref and "steps" in ref else "-"
        for row in run["rows"]:
            lines.append(
                f"| {method} | {setting} | {row['budget']} | {row['ppl']:.2f} | {row['accuracy']:.3f} | "
                f"{step:.2f} | {ratio} | {run['train_peak_mib']:.0f} |"
            )
    return "\n".join(lines)


def variant_verdicts(results) -> list[tuple[str, bool | None, str]]:
    """The variant papers' claims, checked on the per-bit runs (``None`` when a run is missing)."""
    out = []
    peqa, qalora = ppl(results, "peqa-4", "uniform 4"), ppl(results, "qalora-4", "uniform 4")
    held = None if peqa is None or qalora is None else peqa > qalora
    out.append(("PEQA below QA-LoRA at 4 bits (QA-LoRA paper, Table 1)", held,
                "missing" if held is None else f"PEQA {peqa:.2f} vs QA-LoRA {qalora:.2f} ppl"))
    pairs = [(b, ppl(results, f"l4q-{b}", f"uniform {b}"), ppl(results, f"qalora-{b}", f"uniform {b}")) for b in (2, 3)]
    held = None if any(None in p for p in pairs) else all(a < q for _, a, q in pairs)
    out.append(("L4Q above QA-LoRA at sub-4-bit (2 and 3 bits)", held,
                "missing" if held is None else "; ".join(f"{b} bits: L4Q {a:.2f} vs QA-LoRA {q:.2f}" for b, a, q in pairs)))
    figures, checks = [], []
    for bits in BITS:
        run, lora = results.get(f"lrqat-{bits}"), results.get(f"qalora-{bits}")
        ours, gptq = ppl(results, f"lrqat-{bits}", f"uniform {bits}"), ppl(results, "ptq-gptq", f"uniform {bits}")
        if None in (run, lora, ours, gptq):
            checks.append(None)
            continue
        memory = run["train_peak_mib"] / lora["train_peak_mib"]
        checks.append(memory <= 1.1 and ours < gptq)
        figures.append(f"{bits} bits: ppl {ours:.2f} vs GPTQ {gptq:.2f}, peak RSS {memory:.2f}x QA-LoRA's")
    held = None if None in checks else all(checks)
    out.append(("LR-QAT at the memory of LoRA (peak RSS within 10% of QA-LoRA's) with better ppl than PTQ", held,
                "missing" if held is None else "; ".join(figures)))
    return out


# ---------------------------------------------------------------------------------------------- report


def table(results) -> str:
    lines = [
        "| method | subnet | avg bits | held-out ppl | GK accuracy | train time (min) | train peak RSS (MiB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name, run in results.items():
        if not isinstance(run, dict) or "rows" not in run:
            continue
        minutes = f"{run['train_seconds'] / 60:.1f}" if "train_seconds" in run else "-"
        peak = f"{run['train_peak_mib']:.0f}" if "train_peak_mib" in run else "-"
        for row in run["rows"]:
            lines.append(
                f"| {name} | {row['budget']} | {row['avg_bits']:.3f} | {row['ppl']:.2f} | "
                f"{row['accuracy']:.3f} | {minutes} | {peak} |"
            )
    return "\n".join(lines)


def plot(results, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for name, run in results.items():
        if not isinstance(run, dict) or "rows" not in run:
            continue
        rows = sorted(run["rows"], key=lambda r: r["avg_bits"])
        style = "--" if name.startswith("ptq") else ("" if name.startswith("qalora") else "-")
        ax.plot([r["avg_bits"] for r in rows], [r["ppl"] for r in rows], style, marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("average bits per weight")
    ax.set_ylabel("held-out perplexity (persuasion.txt, log)")
    ax.set_title("SmolLM2-135M: methods x budgets")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_run(path: Path, name: str, run: dict) -> dict:
    """Add one finished run to ``path`` and return everything it holds: merging on each write lets two
    processes (``--reuse``, different ``--runs``) fill one results file."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    results[name] = run
    path.write_text(json.dumps(results, indent=1))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100, help="N: optimizer steps of every training run")
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--base", choices=("gptq", "rtn"), default="gptq", help="quantizer of the trained supernet")
    parser.add_argument("--runs", nargs="*", choices=list(RUNS), default=list(RUNS), help="training runs to do")
    parser.add_argument(
        "--search-runs",
        nargs="*",
        choices=QFA_RUNS,
        default=QFA_RUNS,
        help="QFA runs whose supernet is also searched at the mixed --budgets (default: all of them)",
    )
    parser.add_argument("--no-ptq", action="store_true", help="skip the PTQ rows")
    parser.add_argument("--ptq", nargs="+", choices=("rtn", "gptq"), default=["rtn", "gptq"], help="PTQ rows to score")
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.25, 2.5, 2.75, 3.25, 3.5])
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-tokens", type=int, default=8192, help="held-out tokens of persuasion.txt")
    parser.add_argument("--max-examples", type=int, help="general_knowledge examples (default: all 70)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", default="benchmarks/out/paper_claims")
    parser.add_argument("--reuse", action="store_true", help="keep runs already in OUT/results.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    train_texts, blocks, heldout_ids = austen_data(tokenizer, args.seq_len, args.eval_tokens)
    search_ids = tokenizer(train_texts[0][:40_000], add_special_tokens=False)["input_ids"][:2048]
    data = {
        "tokenizer": tokenizer,
        "blocks": blocks,
        "heldout_ids": torch.tensor(heldout_ids),
        "search_ids": torch.tensor(search_ids),
        "task": bigbench_task("general_knowledge"),
        "max_examples": args.max_examples,
        "base_folder": cached_supernet(args.base),
    }

    results_path = out / "results.json"
    if not args.reuse:
        results_path.unlink(missing_ok=True)  # a fresh benchmark: no run of an earlier one may leak in
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    todo = ([] if args.no_ptq else [f"ptq-{m}" for m in args.ptq]) + args.runs
    for name in todo:
        if name in results:
            print(f">> {name}: kept from {results_path}")
            continue
        print(f">> {name} ({(time.perf_counter() - started) / 60:.1f} min in)", flush=True)
        if name.startswith("ptq-"):
            results[name] = {"rows": ptq_rows(name.removeprefix("ptq-"), data)}
        else:
            results[name] = training_run(name, args, data)
        results = save_run(results_path, name, results[name])

    text = table(results)
    claims = verdicts(results, args.budgets)
    verdict_lines = [
        f"- {'HELD' if held else ('MISSED' if held is False else 'NOT RUN')}: {claim} ({figures})"
        for claim, held, figures in claims
    ]
    header = (
        f"SmolLM2-135M, base {args.base} g64 bits 2/3/4; {args.steps} steps of {args.batch_size} x {args.seq_len} "
        f"tokens per run; held-out persuasion.txt {args.eval_tokens} tokens; {platform.machine()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}; {date.today()}; "
        f"total {(time.perf_counter() - started) / 60:.1f} min"
    )
    variant_lines = [
        f"- {'HELD' if held else ('MISSED' if held is False else 'NOT RUN')}: {claim} ({figures})"
        for claim, held, figures in variant_verdicts(results)
    ]
    report = "\n\n".join([header, text, "\n".join(verdict_lines), variant_table(results), "\n".join(variant_lines)])
    print("\n" + report)
    (out / "table.md").write_text(report + "\n")
    plot(results, out / "pareto.png")
    print(f"\nwrote {out / 'table.md'}, {out / 'pareto.png'}, {results_path}")


if __name__ == "__main__":
    main()
