"""Which training switches recover the float model, alone and combined, on the paper_claims recipe.

The same data, recipe and scoring as ``benchmarks/paper_claims.py`` (SmolLM2-135M, five Austen novels
for training, held-out persuasion.txt perplexity, BIG-bench accuracy), with one QFA run per
configuration. A configuration is a base supernet and a set of switches:

- base: ``gptq`` (GPTQ on the min-max grid) or ``gptq-clip`` (GPTQ on the grid of the per-group
  clipping search, ``QFAQuantizationConfig(clip_search=True)``);
- objective: ``lm`` (next-token loss) or ``kd`` (KL to the float model, a bfloat16 teacher, the
  default of ``peft-qfa train``);
- candidate bit-widths the sampler draws: all of {2, 3, 4}, only {3, 4} (``train_bits``), or
  {3, 4} for the first ``--warmup-fraction`` of the steps and then {2, 3, 4} (``warmup_steps``),
  to see whether mixed subnets with 2-bit groups spoil the 3- and 4-bit adapters;
- schedule ``fixed-B``: a per-bit run (QA-LoRA on that bit-width alone) with the same switches.

    python benchmarks/recipe_ablation.py --threads 1                     # every configuration
    python benchmarks/recipe_ablation.py --configs gptq-clip/kd --steps 2 --eval-tokens 1024 \\
        --max-examples 4 --out /tmp/ablation_smoke                        # a quick pass through the code

Results go to ``--out`` (``results.json``, ``table.md``); ``--reuse`` keeps the configurations already
there, so several invocations (or two processes) can fill one table.
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
from paper_claims import BITS, Scorer, austen_data, load_supernet, save_run
from peft import get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainingArguments,
    default_data_collator,
)

import peft_qfa
from peft_qfa import QFAConfig, QFASamplerCallback
from peft_qfa.search import MultipleChoiceEvaluator
from peft_qfa.testing import bigbench_task, smollm2_path
from peft_qfa.train.distillation import FloatTeacher, QFADistillationTrainer

TASKS = ("general_knowledge", "physical_intuition", "misconceptions", "date_understanding")
BASES = {"gptq": {"method": "gptq"}, "gptq-clip": {"method": "gptq", "clip": True}}
CANDIDATES = ("all", "34", "warmup")
"""Bit-widths the sampler draws: all of them, {3, 4} only, or {3, 4} during a warm-up and then all."""


def parse_config(name: str) -> dict:
    """``BASE/OBJECTIVE[/CANDIDATES][/fixed-B]``, e.g. ``gptq-clip/kd/34`` or ``gptq-clip/kd/fixed-3``."""
    parts = name.split("/")
    if len(parts) < 2 or parts[0] not in BASES or parts[1] not in ("lm", "kd"):
        raise argparse.ArgumentTypeError(f"{name!r}: expected BASE/OBJECTIVE[/CANDIDATES], BASE in {list(BASES)}, "
                                         "OBJECTIVE lm or kd")
    config = {"name": name, "base": parts[0], "objective": parts[1], "candidates": "all", "fixed": None}
    for extra in parts[2:]:
        if extra.startswith("fixed-") and extra.removeprefix("fixed-").isdigit():
            config["fixed"] = int(extra.removeprefix("fixed-"))
        elif extra in CANDIDATES:
            config["candidates"] = extra
        else:
            raise argparse.ArgumentTypeError(f"{name!r}: unknown part {extra!r}")
    return config


DEFAULT_CONFIGS = ["gptq/lm", "gptq-clip/lm", "gptq/kd", "gptq-clip/kd", "gptq-clip/kd/34", "gptq-clip/kd/warmup"]


def sampler_options(config: dict, steps: int, warmup_fraction: float) -> tuple[str, dict]:
    if config["fixed"] is not None:
        return "fixed", {"subnet": config["fixed"]}
    if config["candidates"] == "34":
        return "resource-balanced", {"train_bits": [3, 4]}
    if config["candidates"] == "warmup":
        return "resource-balanced", {"warmup_steps": max(1, round(warmup_fraction * steps))}
    return "resource-balanced", {}


def train_run(config: dict, args, data, teacher) -> dict:
    """Fresh adapters (the same initial values for every run) trained with the configuration's switches."""
    torch.manual_seed(args.seed)
    base = cached_supernet(**BASES[config["base"]])
    model = get_peft_model(load_supernet(base), QFAConfig(r=args.r, lora_alpha=args.lora_alpha))
    schedule, options = sampler_options(config, args.steps, args.warmup_fraction)
    callback = QFASamplerCallback(schedule=schedule, seed=args.seed, **options)
    training_args = TrainingArguments(
        output_dir=f"{args.out}/runs/{config['name'].replace('/', '_')}",
        max_steps=args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_grad_norm=0.3,
        weight_decay=0.0,
        logging_steps=max(1, args.steps // 10),
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
    )
    common = dict(model=model, args=training_args, train_dataset=data["blocks"],
                  data_collator=default_data_collator, callbacks=[callback])
    trainer = QFADistillationTrainer(teacher=teacher, **common) if config["objective"] == "kd" else Trainer(**common)
    reset_peak_rss()
    start = time.perf_counter()
    trainer.train()
    seconds, peak = time.perf_counter() - start, status_mib("VmHWM")
    model.eval()
    space = peft_qfa.search_space(model)
    scorer, tasks = Scorer(model, data), TaskScorer(data)
    bits = [config["fixed"]] if config["fixed"] is not None else list(BITS)
    rows = [scorer.row(space.uniform(b), budget=f"uniform {b}", **tasks.accuracies(model, space.uniform(b)))
            for b in bits]
    scorer.release()
    tasks.release()
    totals = {b: sum(c.get(b, 0) for c in callback.bit_counts.values()) for b in BITS}
    return {"train_seconds": seconds, "train_peak_mib": peak, "rows": rows, "bit_steps": totals,
            "sampler": callback.sampler.config()}


def score(evaluator, model, subnet) -> float:
    """An evaluator's score of ``subnet``, or of a model without subnets (the float model) for ``None``."""
    if subnet is not None:
        return evaluator.evaluate(model, subnet)
    with torch.no_grad():
        return float(evaluator.score(model))


class TaskScorer:
    """Accuracy on each BIG-bench task but general_knowledge (the Scorer has that one), for one model's
    subnets: the tasks are tokenized once, and each evaluator caches its scores per subnet."""

    def __init__(self, data):
        self.evaluators = {
            task: MultipleChoiceEvaluator(bigbench_task(task), data["tokenizer"], max_examples=data["max_examples"])
            for task in TASKS[1:]
        }

    def accuracies(self, model, subnet) -> dict:
        return {task: score(evaluator, model, subnet) for task, evaluator in self.evaluators.items()}

    def release(self):
        for evaluator in self.evaluators.values():
            evaluator.release()


def float_rows(data) -> dict:
    """The float model's figures, through the same evaluators (a subnet-free model: one row)."""
    model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32).eval()
    scorer, tasks = Scorer(model, data), TaskScorer(data)
    row = {"budget": "fp32", "avg_bits": 32.0, "ppl": math.exp(score(scorer.loss, model, None)),
           "accuracy": score(scorer.accuracy, model, None), **tasks.accuracies(model, None)}
    scorer.release()
    tasks.release()
    return {"rows": [row]}


def table(results) -> str:
    header = ("| configuration | subnet | held-out ppl | x fp32 | " + " | ".join(t.split("_")[0] for t in TASKS)
              + " | steps per bit (2/3/4, all groups) | train min | peak MiB |")
    lines = [header, "|---|---|---:|---:|" + "---:|" * len(TASKS) + "---|---:|---:|"]
    reference = results.get("fp32", {}).get("rows", [{}])[0].get("ppl")
    for name, run in results.items():
        for row in run["rows"]:
            ratio = f"{row['ppl'] / reference:.2f}" if reference else "-"
            accuracies = [row["accuracy"]] + [row.get(t) for t in TASKS[1:]]
            steps = "/".join(str(run["bit_steps"].get(str(b), run["bit_steps"].get(b, 0))) for b in BITS) \
                if "bit_steps" in run else "-"
            minutes = f"{run['train_seconds'] / 60:.1f}" if "train_seconds" in run else "-"
            peak = f"{run['train_peak_mib']:.0f}" if "train_peak_mib" in run else "-"
            lines.append(f"| {name} | {row['budget']} | {row['ppl']:.2f} | {ratio} | "
                         + " | ".join("-" if a is None else f"{a:.3f}" for a in accuracies)
                         + f" | {steps} | {minutes} | {peak} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", type=parse_config, default=[parse_config(c) for c in DEFAULT_CONFIGS])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--warmup-fraction", type=float, default=1 / 3)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--max-examples", type=int, default=64, help="examples per BIG-bench task")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-fp32", action="store_true", help="skip the float model's row")
    parser.add_argument("--out", default="benchmarks/out/recipe_ablation")
    parser.add_argument("--reuse", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    _, blocks, heldout_ids = austen_data(tokenizer, args.seq_len, args.eval_tokens)
    data = {"tokenizer": tokenizer, "blocks": blocks, "heldout_ids": torch.tensor(heldout_ids),
            "task": bigbench_task("general_knowledge"), "max_examples": args.max_examples}
    results_path = out / "results.json"
    if not args.reuse:
        results_path.unlink(missing_ok=True)
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    teacher = None
    todo = ([] if args.no_fp32 else ["fp32"]) + [c["name"] for c in args.configs]
    configs = {c["name"]: c for c in args.configs}
    for name in todo:
        if name in results:
            print(f">> {name}: kept from {results_path}")
            continue
        print(f">> {name} ({(time.perf_counter() - started) / 60:.1f} min in)", flush=True)
        if name == "fp32":
            run = float_rows(data)
        else:
            if configs[name]["objective"] == "kd" and teacher is None:
                teacher = FloatTeacher(AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.bfloat16))
            run = train_run(configs[name], args, data, teacher)
        results = save_run(results_path, name, run)

    header = (f"SmolLM2-135M, bits 2/3/4 g64; {args.steps} steps of {args.batch_size} x {args.seq_len} tokens per run, "
              f"r={args.r}, lr {args.lr}; held-out persuasion.txt {args.eval_tokens} tokens; BIG-bench "
              f"{args.max_examples} examples per task; {platform.machine()}, {torch.get_num_threads()} threads, "
              f"torch {torch.__version__}; {date.today()}; total {(time.perf_counter() - started) / 60:.1f} min")
    text = table(results)
    print("\n" + header + "\n\n" + text)
    (out / "table.md").write_text(header + "\n\n" + text + "\n")
    print(f"\nwrote {out / 'table.md'}, {results_path}")


if __name__ == "__main__":
    main()
