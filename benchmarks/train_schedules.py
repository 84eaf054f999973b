"""Once-for-all training on the real SmolLM2-135M supernet: resource-balanced vs uniform sampling.

Builds one 2/3/4-bit supernet (RTN or GPTQ, group size 64 by default: SmolLM2's GGUF weights already sit
on a 4-bit grid of blocks of 32), then for each schedule trains fresh QFA adapters for ``--steps``
optimizer steps on five Austen novels with the Trainer and ``QFASamplerCallback``, and prints the
held-out perplexity (persuasion.txt) of the all-2, all-3 and all-4-bit subnets before training (fresh
adapters are the identity) and after each schedule, plus how many steps trained each bit-width.

    python benchmarks/train_schedules.py --measure             # time a few steps, project the full run
    python benchmarks/train_schedules.py [--steps 300 --seq-len 256 --batch-size 4 \\
        --schedules resource-balanced uniform --eval-tokens 16384 --json results.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
from datetime import date
from statistics import median

import torch
from datasets import Dataset
from peft import get_peft_model
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig, QFASamplerCallback
from peft_qfa.testing import austen_texts, perplexity, smollm2_path
from peft_qfa.train.recipe import token_blocks

EVAL_BITS = (2, 3, 4)


class StepTimer(TrainerCallback):
    """Wall time and process CPU time of each optimizer step (CPU time tells a busy machine from a slow step)."""

    def __init__(self):
        self.times, self.cpu_times, self._start = [], [], None

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = (time.perf_counter(), time.process_time())

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start[0])
        self.cpu_times.append(time.process_time() - self._start[1])


def build_supernet(folder, method, group_size, train_blocks, calibration_samples, seq_len):
    calibration = None
    if method == "gptq":
        picks = torch.linspace(0, len(train_blocks) - 1, calibration_samples).long().tolist()
        calibration = torch.stack([train_blocks[i]["input_ids"] for i in picks])
    config = QFAQuantizationConfig(
        bits=(2, 3, 4), group_size=group_size, method=method, calibration=calibration, calibration_seq_len=seq_len,
        calibration_samples=calibration_samples,
    )
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=config, dtype=torch.float32)


def subnet_perplexities(model, tokenizer, heldout, eval_tokens, eval_seq_len):
    space = peft_qfa.search_space(model)
    results = {}
    for bits in EVAL_BITS:
        with peft_qfa.use_subnet(model, space.uniform(bits)):
            results[bits] = perplexity(model, tokenizer, heldout, seq_len=eval_seq_len, max_tokens=eval_tokens)
    return results


def train(model, blocks, schedule, args, output_dir, steps, **sampler_options):
    """``steps`` Trainer steps of ``model`` with ``schedule`` (QA-LoRA's recipe: constant lr, clip 0.3)."""
    callback = QFASamplerCallback(schedule=schedule, seed=args.seed, **sampler_options)
    timer = StepTimer()
    training_args = TrainingArguments(
        output_dir=output_dir,
        max_steps=steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        max_grad_norm=0.3,
        weight_decay=0.0,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to=[],
        seed=args.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=False,
    )
    trainer = Trainer(
        model=model, args=training_args, train_dataset=blocks, data_collator=default_data_collator,
        callbacks=[callback, timer],
    )
    trainer.train()
    return callback, timer, trainer.state.log_history


def bits_share(callback):
    totals = {b: sum(c.get(b, 0) for c in callback.bit_counts.values()) for b in EVAL_BITS}
    whole = sum(totals.values())
    return {b: totals[b] / whole for b in EVAL_BITS}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--schedules", nargs="+", default=["resource-balanced", "uniform"])
    parser.add_argument("--method", choices=("rtn", "gptq"), default="rtn")
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--calibration-samples", type=int, default=64)
    parser.add_argument("--r", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--eval-seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--measure", action="store_true", help="time --measure-steps steps and project the full run")
    parser.add_argument("--measure-steps", type=int, default=4)
    parser.add_argument("--output-dir", default="/tmp/qfa_train_schedules")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    train_texts, heldout = austen_texts()
    blocks = token_blocks(Dataset.from_dict({"text": train_texts}), tokenizer, args.seq_len)
    blocks.set_format("torch")
    print(f"{len(blocks)} training blocks of {args.seq_len} tokens; held-out persuasion.txt")

    t0 = time.perf_counter()
    supernet = build_supernet(folder, args.method, args.group_size, blocks, args.calibration_samples, args.seq_len)
    build_time = time.perf_counter() - t0
    print(f"supernet ({args.method}, g{args.group_size}) built in {build_time:.0f} s")

    if args.measure:
        model = get_peft_model(copy.deepcopy(supernet), QFAConfig(r=args.r, lora_alpha=args.lora_alpha))
        _, timer, _ = train(model, blocks, args.schedules[0], args, args.output_dir, args.measure_steps)
        per_step = median(timer.times)
        probe_tokens = min(args.eval_tokens, 2 * args.eval_seq_len)  # evaluation time grows linearly with tokens
        t0 = time.perf_counter()
        subnet_perplexities(model, tokenizer, heldout, probe_tokens, args.eval_seq_len)
        eval_time = (time.perf_counter() - t0) * args.eval_tokens / probe_tokens
        total = build_time + len(args.schedules) * args.steps * per_step + (1 + len(args.schedules)) * eval_time
        print(f"median step {per_step:.2f} s wall, {median(timer.cpu_times):.2f} s CPU on {torch.get_num_threads()} "
              f"threads (batch {args.batch_size} x {args.seq_len} tokens); "
              f"all-2/3/4 perplexity over {args.eval_tokens} tokens ~{eval_time:.0f} s (timed on {probe_tokens})")
        print(f"projected full run ({len(args.schedules)} schedules x {args.steps} steps): {total / 60:.1f} min")
        return

    torch.manual_seed(args.seed)
    fresh = get_peft_model(copy.deepcopy(supernet), QFAConfig(r=args.r, lora_alpha=args.lora_alpha))
    rows = {"before training": subnet_perplexities(fresh, tokenizer, heldout, args.eval_tokens, args.eval_seq_len)}
    del fresh
    details = {}
    for schedule in args.schedules:
        torch.manual_seed(args.seed)  # the same initial adapters for every schedule
        model = get_peft_model(copy.deepcopy(supernet), QFAConfig(r=args.r, lora_alpha=args.lora_alpha))
        t0 = time.perf_counter()
        callback, timer, history = train(model, blocks, schedule, args, f"{args.output_dir}/{schedule}", args.steps)
        train_time = time.perf_counter() - t0
        rows[schedule] = subnet_perplexities(model, tokenizer, heldout, args.eval_tokens, args.eval_seq_len)
        avg_bits = [e["qfa/avg_bits"] for e in history if "qfa/avg_bits" in e]
        details[schedule] = {
            "train_seconds": train_time,
            "median_step_seconds": median(timer.times),
            "median_step_cpu_seconds": median(timer.cpu_times),
            "bit_share": bits_share(callback),
            "logged_avg_bits": avg_bits,
        }
        del model

    print(f"\nHeld-out perplexity (persuasion.txt, first {args.eval_tokens} tokens, windows of {args.eval_seq_len}); "
          f"{args.steps} steps of batch {args.batch_size} x {args.seq_len} tokens, {args.method} g{args.group_size}, "
          f"r={args.r}, lr={args.lr}")
    header = f"{'adapters':<20}" + "".join(f"{f'all-{b}':>10}" for b in EVAL_BITS) + f"{'steps at 2/3/4 bits':>24}"
    print(header)
    print("-" * len(header))
    for name, ppl in rows.items():
        share = details.get(name, {}).get("bit_share")
        shares = "/".join(f"{share[b]:.0%}" for b in EVAL_BITS) if share else ""
        print(f"{name:<20}" + "".join(f"{ppl[b]:>10.2f}" for b in EVAL_BITS) + f"{shares:>24}")
    for name, info in details.items():
        print(f"{name}: trained in {info['train_seconds'] / 60:.1f} min ({info['median_step_seconds']:.2f} s/step); "
              f"logged qfa/avg_bits {[round(v, 2) for v in info['logged_avg_bits']]}")
    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}; {date.today()}; total {(time.perf_counter() - started) / 60:.1f} min")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"args": vars(args), "perplexity": rows, "details": details}, f, indent=2)


if __name__ == "__main__":
    main()
