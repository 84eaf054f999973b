"""Per-group clipping search on SmolLM2-135M: 2/3/4-bit PTQ held-out perplexity with and without it.

Each configuration builds the 2/3/4-bit supernet through
``from_pretrained(quantization_config=QFAQuantizationConfig(..., clip_search=...))`` and scores the
all-2, all-3 and all-4 subnets (no adapters) on the held-out ``persuasion.txt``:

* ``rtn`` / ``gptq``: the min-max grid;
* ``rtn-clip-weight``: RTN with the clipping search on the weight error (no calibration data);
* ``rtn-clip`` / ``gptq-clip``: the clipping search on each group's output error (calibration Hessians).

Calibration: windows of 512 tokens spread evenly over the five Austen training novels. The build
time of each configuration is printed too; configurations run one after the other in one process,
so on a shared machine read the times as rough.

    python benchmarks/clip_search.py [--configs rtn rtn-clip gptq gptq-clip] [--eval-tokens 8192] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import torch
from datasets import Dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from peft_qfa import QFAQuantizationConfig
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.testing import austen_texts, perplexity, smollm2_path
from peft_qfa.train.recipe import token_blocks

CONFIGS = {  # name: (method, clip_search, uses calibration data)
    "rtn": ("rtn", False, False),
    "rtn-clip-weight": ("rtn", True, False),
    "rtn-clip": ("rtn", True, True),
    "gptq": ("gptq", False, True),
    "gptq-clip": ("gptq", True, True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--calibration-samples", type=int, default=64)
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-fp32", action="store_true", help="Do not score the float model.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    path = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    train_texts, heldout = austen_texts()
    ids = tokenizer(heldout[: 10 * args.eval_tokens], add_special_tokens=False, verbose=False)["input_ids"]
    eval_ids = torch.tensor(ids[: args.eval_tokens])

    calibration = None
    if any(CONFIGS[name][2] for name in args.configs):
        blocks = token_blocks(Dataset.from_dict({"text": train_texts}), tokenizer, 512)
        picks = torch.linspace(0, len(blocks) - 1, args.calibration_samples).long().tolist()
        calibration = torch.tensor([blocks[i]["input_ids"] for i in picks])

    fp_ppl = float("nan")
    if not args.skip_fp32:
        fp_ppl = perplexity(AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32), eval_ids, seq_len=args.seq_len)
    print(f"fp32 perplexity: {fp_ppl:.2f}", flush=True)

    rows = []
    for name in args.configs:
        method, clip, uses_data = CONFIGS[name]
        config = QFAQuantizationConfig(
            bits=(2, 3, 4), group_size=args.group_size, method=method, clip_search=clip,
            calibration=calibration if uses_data else None, calibration_samples=args.calibration_samples,
        )
        start = time.perf_counter()
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, dtype=torch.float32)
        build_s = time.perf_counter() - start
        layers = find_bit_layers(model).values()
        scores = {}
        for bits in (2, 3, 4):
            for layer in layers:
                layer.active_bits = bits
            scores[bits] = perplexity(model, eval_ids, seq_len=args.seq_len)
        rows.append((name, scores, build_s))
        print(f"{name}: {scores} build {build_s:.0f} s", flush=True)
        del model

    print(
        f"\nSmolLM2-135M-Instruct, group size {args.group_size}, held-out persuasion.txt: first {args.eval_tokens} "
        f"tokens, windows of {args.seq_len}, no BOS; {args.threads} torch thread(s); "
        f"{platform.machine()} {platform.processor() or ''}; {datetime.date.today()}"
    )
    print(f"fp32: {fp_ppl:.2f}\n")
    print("| configuration | all-2 | all-3 | all-4 | build (s) |")
    print("|---|---:|---:|---:|---:|")
    for name, scores, build_s in rows:
        print(f"| {name} | {scores[2]:,.1f} | {scores[3]:,.2f} | {scores[4]:,.2f} | {build_s:.0f} |")


if __name__ == "__main__":
    main()
