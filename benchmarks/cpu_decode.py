"""Greedy decoding speed of a materialized SmolLM2 subnet on the CPU, with and without torch's int4 kernel.

A packed layer on the CPU either dequantizes its whole weight on every call (the reference path, any
dtype) or, for a bfloat16 model, runs torch's group-wise int4 kernel on a repacked copy
(:mod:`peft_qfa.quant.cpu_int4`). This script materializes one subnet (uniform ``--bits`` by default)
of a QFA supernet and times greedy generation for:

* the float SmolLM2 in float32 and in bfloat16 (the baselines, measured in the same run);
* the packed model in float32 (reference path), in bfloat16 with the kernel turned off
  (``QFA_CPU_INT4=0``: reference path) and in bfloat16 with the kernel.

Each row also gives the held-out perplexity (persuasion.txt) so the speed is not bought with quality,
and the resident weight bytes (parameters and buffers, plus the kernel's repacked copies).

    python benchmarks/cpu_decode.py                                  # RTN supernet, fresh adapters
    python benchmarks/cpu_decode.py --supernet runs/supernet/ --bits 3

Run it alone: timings on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import time

import torch
from _common import cached_supernet
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa.ops import refresh_switches
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.testing import austen_texts, perplexity, smollm2_path


def weight_bytes(model: torch.nn.Module) -> int:
    """Parameters and buffers, plus the CPU int4 kernel's repacked copies (made on first use)."""
    total = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    for layer in find_bit_layers(model).values():
        cached = getattr(layer, "_int4_cache", None)
        if cached is not None and cached[1] is not None:
            total += sum(
                t.numel() * t.element_size() for t in (cached[1].packed, cached[1].scales_and_offsets)
            )
    return total


@torch.no_grad()
def tokens_per_second(model, prompt: torch.Tensor, new_tokens: int, repeats: int) -> tuple[float, list[int]]:
    """Median tokens/s of ``repeats`` greedy generations of exactly ``new_tokens`` (after one warm-up)."""

    def generate():
        return model.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
        )[0, prompt.shape[1] :].tolist()

    generate()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        tokens = generate()
        times.append(time.perf_counter() - began)
    return new_tokens / statistics.median(times), tokens


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--supernet", help="a saved supernet folder (with adapters); default: cached RTN g64 supernet"
    )
    parser.add_argument("--bits", type=int, default=3, help="the uniform subnet to materialize")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--eval-tokens", type=int, default=2048, help="held-out tokens for perplexity")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    _, heldout = austen_texts()
    ids = tokenizer(heldout[:40_000], add_special_tokens=False, verbose=False)["input_ids"]
    prompt = torch.tensor([ids[: args.prompt_tokens]])
    eval_ids = torch.tensor(ids[: args.eval_tokens])

    supernet = AutoModelForCausalLM.from_pretrained(
        args.supernet or cached_supernet("rtn"), dtype=torch.float32
    )
    subnet = peft_qfa.search_space(supernet).uniform(args.bits)
    # float32 files, so that the fp32 row is the exact dequantize path and the bf16 rows cast from it
    packed = peft_qfa.materialize(supernet.eval(), subnet, deploy_dtype="float32").eval()
    del supernet
    float_model = AutoModelForCausalLM.from_pretrained(smollm2_path(), dtype=torch.float32).eval()

    configs = [
        ("float SmolLM2, fp32", lambda: float_model, None),
        ("float SmolLM2, bf16", lambda: copy.deepcopy(float_model).to(torch.bfloat16), None),
        (f"packed {args.bits}-bit, fp32 (dequantize)", lambda: packed, None),
        (f"packed {args.bits}-bit, bf16 (dequantize)", lambda: copy.deepcopy(packed).to(torch.bfloat16), "0"),
        (
            f"packed {args.bits}-bit, bf16 (int4 kernel)",
            lambda: copy.deepcopy(packed).to(torch.bfloat16),
            "1",
        ),
    ]
    rows = []
    for name, build, switch in configs:
        if switch is not None:
            os.environ["QFA_CPU_INT4"] = switch
            refresh_switches()  # the backend dispatcher reads the environment once
        model = build()
        speed, tokens = tokens_per_second(model, prompt, args.new_tokens, args.repeats)
        ppl = perplexity(model, eval_ids, seq_len=512)
        rows.append((name, speed, ppl, weight_bytes(model) / 1e6, tokens))
        print(f"{name}: {speed:.2f} tokens/s, ppl {ppl:.2f}", flush=True)
        os.environ.pop("QFA_CPU_INT4", None)
        refresh_switches()

    baseline = rows[0][1]
    print(
        f"\nSmolLM2-135M-Instruct, {args.supernet or 'RTN g64 supernet (fresh adapters)'}, uniform {args.bits}-bit "
        f"subnet; greedy {args.new_tokens} tokens after a {args.prompt_tokens}-token prompt, median of "
        f"{args.repeats}; perplexity on {args.eval_tokens} tokens of persuasion.txt (windows of 512)"
    )
    print(
        f"machine: {platform.node()} {platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}\n"
    )
    header = (
        f"{'configuration':<38} {'tokens/s':>9} {'vs fp32 float':>13} {'held-out ppl':>12} {'weights MB':>10}"
    )
    print(header)
    print("-" * len(header))
    for name, speed, ppl, mb, _ in rows:
        print(f"{name:<38} {speed:9.2f} {speed / baseline:12.2f}x {ppl:12.2f} {mb:10.1f}")

    def agreeing(a: list[int], b: list[int]) -> int:
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y), len(a))

    print(
        f"\ngreedy tokens that agree before the first difference (of {args.new_tokens}): packed bf16 int4 kernel vs "
        f"dequantize path {agreeing(rows[3][4], rows[4][4])}; packed fp32 vs bf16 dequantize path "
        f"{agreeing(rows[2][4], rows[3][4])}; float SmolLM2 fp32 vs bf16 {agreeing(rows[0][4], rows[1][4])}"
    )


if __name__ == "__main__":
    main()
