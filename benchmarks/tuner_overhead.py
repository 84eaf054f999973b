"""Cost of one training step: QFA adapters on a 2/3/4-bit supernet vs plain PEFT LoRA on the fp32 model.

Both configurations train SmolLM2-135M-Instruct with the same rank, the same targets (every linear
of the decoder blocks: q/k/v/o/gate/up/down) and the same batch, with AdamW. The QFA run uses a fixed
all-3-bit subnet of an RTN supernet (bits 2/3/4, group size 64, built once and cached on disk).

Step time: median wall time of ``--steps`` full optimizer steps (forward, backward, AdamW) after
``--warmup`` steps.

Peak memory: every configuration runs in its own child process that does nothing else, and the
child reads the kernel's high-water mark of its resident set (``VmHWM`` in ``/proc/self/status``).
A process-level figure counts everything torch allocates (weights, activations kept for backward,
the temporary dequantized weights, optimizer state, allocator caching) and cannot be disturbed by
the other configuration. Loading a model has its own transient peak (the checkpoint pages being
copied into parameters), which is not what a training step costs, so once the model is built the
child resets the mark (``echo 5 > /proc/self/clear_refs``, Linux >= 4.0) and reads it again after
the steps: "train peak" is the most RAM the process held while training (model included); "load
peak" is the mark before the reset. The supernet is built once, in a separate process, and cached;
the children only load it (which never materializes full-precision weights).

    PYTHONPATH=src:kernels/build/torch-universal python benchmarks/tuner_overhead.py

prints a table with the QFA / LoRA ratios. Figures depend on the machine and its load; run it alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _common import cached_supernet, reset_peak_rss, status_mib

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
CONFIGS = ("lora_fp32", "qfa_supernet")


def _build(config: str, args) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    import peft_qfa
    from peft_qfa.testing import smollm2_path

    if config == "lora_fp32":
        model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32)
        return get_peft_model(
            model, LoraConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=TARGETS)
        )
    model = AutoModelForCausalLM.from_pretrained(args.supernet_dir)
    model = get_peft_model(
        model, peft_qfa.QFAConfig(r=args.rank, lora_alpha=2 * args.rank, target_modules=TARGETS)
    )
    peft_qfa.set_subnet(model, peft_qfa.search_space(model).uniform(3))
    return model


def run_child(config: str, args) -> dict:
    """Everything one configuration does, in this (child) process; returns its measurements."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rss_after_imports = status_mib("VmRSS")
    model = _build(config, args)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batch = torch.randint(0, 49152, (args.batch, args.seq_len), generator=torch.Generator().manual_seed(0))
    gc.collect()
    load_peak, rss_loaded = status_mib("VmHWM"), status_mib("VmRSS")
    reset_peak_rss()
    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    try:
        import qfa_kernels

        kernel = f"qfa_kernels ({qfa_kernels.selected_backend(torch.device('cpu'))})"
    except ImportError:
        kernel = "peft_qfa.ops fallback (dequantize + F.linear)"
    return {
        "config": config,
        "step_s": statistics.median(times),
        "step_s_all": times,
        "train_peak_mib": status_mib("VmHWM"),
        "load_peak_mib": load_peak,
        "rss_loaded_mib": rss_loaded,
        "rss_after_imports_mib": rss_after_imports,
        "trainable_params": sum(p.numel() for p in params),
        "kernel": kernel if config == "qfa_supernet" else "torch F.linear",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rank", type=int, default=8, help="adapter rank (SmolLM2's 576 inputs hold 9 groups of 64)"
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--child", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--supernet-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_child(args.child, args)))
        return

    args.supernet_dir = cached_supernet("rtn", args.group_size)
    results = {}
    for config in CONFIGS:
        command = [sys.executable, __file__, "--child", config, "--supernet-dir", str(args.supernet_dir)]
        for flag in ("rank", "batch", "seq_len", "steps", "warmup", "threads", "group_size"):
            command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[config] = json.loads(out.strip().splitlines()[-1])

    lora, qfa = results["lora_fp32"], results["qfa_supernet"]
    print(
        f"SmolLM2-135M, r={args.rank}, batch {args.batch}x{args.seq_len}, {args.threads} thread(s), "
        f"median of {args.steps} steps after {args.warmup} warm-up; QFA subnet all-3-bit, g={args.group_size}"
    )
    print(f"QFA linear path: {qfa['kernel']}")
    columns = (
        "config",
        "step (s)",
        "train peak (MiB)",
        "loaded (MiB)",
        "load peak (MiB)",
        "imports (MiB)",
        "trainable",
    )
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("-" * (len(c) + 2) for c in columns) + "|")
    for row in (lora, qfa):
        cells = (
            row["config"],
            f"{row['step_s']:.3f}",
            f"{row['train_peak_mib']:.0f}",
            f"{row['rss_loaded_mib']:.0f}",
            f"{row['load_peak_mib']:.0f}",
            f"{row['rss_after_imports_mib']:.0f}",
            f"{row['trainable_params']:,}",
        )
        print("| " + " | ".join(cell.rjust(len(c)) for cell, c in zip(cells, columns, strict=True)) + " |")
    time_ratio = qfa["step_s"] / lora["step_s"]
    peak_ratio = qfa["train_peak_mib"] / lora["train_peak_mib"]
    above = {k: r["train_peak_mib"] - r["rss_after_imports_mib"] for k, r in results.items()}
    print(
        f"step time QFA / LoRA: {time_ratio:.2f}x (target <= 1.30x: {'met' if time_ratio <= 1.3 else 'MISSED'})"
    )
    print(
        f"train peak QFA / LoRA: {peak_ratio:.2f}x (target < 1: {'met' if peak_ratio < 1 else 'MISSED'}); above the "
        f"imports: {above['qfa_supernet']:.0f} vs {above['lora_fp32']:.0f} MiB = "
        f"{above['qfa_supernet'] / above['lora_fp32']:.2f}x"
    )
    print("per-step times (s):", {k: [round(t, 3) for t in v["step_s_all"]] for k, v in results.items()})


if __name__ == "__main__":
    main()
