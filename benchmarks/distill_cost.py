"""What distillation costs per training step on SmolLM2-135M: the step-time ratio with and without it.

Builds the RTN 2/3/4-bit supernet with QFA adapters, then times one training micro-step (teacher
pass, student forward, loss, backward) for each objective, interleaved round by round so that a
shared machine's load hits every objective alike: ``none`` (the LM loss), ``float`` (the float
teacher, fp32), ``float-bf16``, ``cached`` (top-k log-probabilities read from memory; the one-off
cost of computing them is printed separately) and ``subnet`` (the in-place all-4 teacher). The
student runs the all-3 subnet. Reports the median over the rounds and the ratio to ``none``.

    python benchmarks/distill_cost.py [--rounds 5] [--batch-size 2] [--seq-len 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import tempfile
import time

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainingArguments

from peft_qfa import QFAConfig, QFAQuantizationConfig
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.testing import austen_texts, smollm2_path
from peft_qfa.train import distillation as kd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for flag, default in (("--rounds", 5), ("--batch-size", 2), ("--seq-len", 128), ("--top-k", 64), ("--threads", 1)):
        parser.add_argument(flag, type=int, default=default)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tokenizer = AutoTokenizer.from_pretrained(path := smollm2_path())
    text = austen_texts()[0][0][:200_000]
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    batch_ids = ids[: args.batch_size * args.seq_len].view(args.batch_size, args.seq_len)
    batch = {"input_ids": batch_ids, "labels": batch_ids.clone()}

    supernet = AutoModelForCausalLM.from_pretrained(
        path, quantization_config=QFAQuantizationConfig(method="rtn"), dtype=torch.float32
    )
    torch.manual_seed(0)
    model = get_peft_model(supernet, QFAConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    for layer in find_bit_layers(model).values():
        layer.active_bits = 3

    start = time.perf_counter()
    cache = kd.cache_teacher_topk(AutoModelForCausalLM.from_pretrained(path), batch_ids, args.top_k)
    cache_s = time.perf_counter() - start
    teachers = {
        "none": None,
        "float": kd.FloatTeacher(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)),
        "float-bf16": kd.FloatTeacher(AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)),
        "cached": kd.CachedTopKTeacher(cache),
        "subnet": kd.SubnetTeacher(),
    }
    with tempfile.TemporaryDirectory() as folder:
        targs = TrainingArguments(output_dir=folder, use_cpu=True, report_to=[], remove_unused_columns=False)
        trainers = {
            name: kd.QFADistillationTrainer(
                model=model, args=targs, teacher=teacher or kd.SubnetTeacher(),
                distillation=kd.DistillationConfig(kl_weight=0.0 if teacher is None else 1.0, top_k=args.top_k),
            )
            for name, teacher in teachers.items()
        }
        times: dict[str, list[float]] = {name: [] for name in trainers}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for name, trainer in trainers.items():
                inputs = dict(batch, **({kd.CACHE_INDEX_COLUMN: torch.arange(args.batch_size)} if name == "cached" else {}))
                model.zero_grad(set_to_none=True)
                start = time.perf_counter()
                trainer.compute_loss(model, inputs).backward()
                elapsed = time.perf_counter() - start
                if round_index:
                    times[name].append(elapsed)

    base = statistics.median(times["none"])
    print(
        f"\nSmolLM2-135M-Instruct RTN supernet, adapters r=8, student all-3, batch {args.batch_size} x {args.seq_len} "
        f"tokens, {args.rounds} interleaved rounds, {args.threads} torch thread(s); {platform.machine()}; "
        f"{datetime.date.today()}\n"
    )
    print("| objective | median step (s) | ratio to LM loss |")
    print("|---|---:|---:|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.2f} | {median / base:.2f} |")
    print(f"\ncached teacher: computing the top-{args.top_k} cache of this batch took {cache_s:.2f} s (once per run)")


if __name__ == "__main__":
    main()
