"""Quantization core on the real SmolLM2-135M: RTN vs GPTQ per bit-width and group size.

For every bit-width (2, 3, 4) and group size (32, 64) it quantizes *all* linear layers of the
decoder (lm_head and embeddings stay fp32) with RTN and with GPTQ, and prints the mean relative
weight error ``||W_q - W|| / ||W||`` and the held-out perplexity on persuasion.txt, next to the
fp32 perplexity and GPTQ's wall time for the whole model (all three bit-widths from one Hessian
per layer).

Hessians come from the full-precision model on Austen training text (not persuasion). SmolLM2's
GGUF weights already sit on a 4-bit grid of blocks of 32, so 4-bit/g32 RTN is nearly lossless by
construction; judge the quantizers at 2/3 bits and at g64.

    python benchmarks/quant_report.py [--calib-samples 128 --calib-len 512 --eval-tokens 16384]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
from torch import nn

from peft_qfa.quant import HessianAccumulator, quantize_weight
from peft_qfa.testing import austen_texts, load_smollm2, perplexity


def calibration_batches(tokenizer, texts, samples, seq_len):
    ids = tokenizer("\n\n".join(texts), return_tensors="pt").input_ids[0]
    need = samples * seq_len
    if ids.numel() < need:
        raise ValueError(f"Calibration text has {ids.numel()} tokens, need {need}.")
    return ids[:need].reshape(samples, seq_len)


@torch.no_grad()
def input_hessians(model, names, batches, batch_size=8):
    """One fp32 pass over the calibration batches, accumulating each named linear's input Hessian."""
    modules = dict(model.named_modules())
    accs = {name: HessianAccumulator(modules[name].in_features, name) for name in names}
    hooks = [modules[n].register_forward_pre_hook(lambda m, a, n=n: accs[n].add(a[0])) for n in names]
    try:
        for chunk in batches.split(batch_size):
            model(input_ids=chunk)
    finally:
        for hook in hooks:
            hook.remove()
    return {name: acc.hessian() for name, acc in accs.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calib-samples", type=int, default=128)
    parser.add_argument("--calib-len", type=int, default=512)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--group-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    args = parser.parse_args()

    torch.manual_seed(0)
    model, tokenizer = load_smollm2()
    model.eval()
    train_texts, heldout = austen_texts()
    eval_ids = tokenizer(heldout, return_tensors="pt").input_ids[0][: args.eval_tokens]

    def ppl():
        return perplexity(model, eval_ids, seq_len=512)

    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    originals = {n: model.get_submodule(n).weight.detach().clone() for n in names}
    rows = [("fp32", "-", "-", 0.0, ppl(), None)]
    print(f"fp32 perplexity {rows[0][4]:.2f} on {eval_ids.numel()} held-out tokens; {len(names)} linear layers")

    batches = calibration_batches(tokenizer, train_texts, args.calib_samples, args.calib_len)
    start = time.perf_counter()
    hessians = input_hessians(model, names, batches)
    hessian_time = time.perf_counter() - start
    print(f"Hessians from {batches.numel()} tokens in {hessian_time:.1f} s")

    for group_size in args.group_sizes:
        quantized = {}
        for method in ("rtn", "gptq"):
            start = time.perf_counter()
            quantized[method] = {
                n: quantize_weight(originals[n], args.bits, group_size, method=method,
                                   hessian=hessians[n] if method == "gptq" else None, layer_name=n)
                for n in names
            }
            wall = time.perf_counter() - start
            for bits in args.bits:
                errors = []
                for n in names:
                    weight = quantized[method][n][bits].dequantize()
                    errors.append(((weight - originals[n]).norm() / originals[n].norm()).item())
                    model.get_submodule(n).weight.data.copy_(weight)
                rows.append((method, bits, group_size, sum(errors) / len(errors), ppl(), wall))
                print(f"{method:5s} {bits}-bit g{group_size}: rel err {rows[-1][3]:.4f} ppl {rows[-1][4]:.2f}"
                      f" (quantize all bits: {wall:.1f} s)", flush=True)
            for n in names:
                model.get_submodule(n).weight.data.copy_(originals[n])

    print(f"\nSmolLM2-135M-Instruct, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; calibration {args.calib_samples}x{args.calib_len} tokens "
          f"(Hessians {hessian_time:.0f} s); held-out persuasion.txt {eval_ids.numel()} tokens\n")
    print("| method | bits | group | mean rel. weight error | held-out ppl | quantize whole model, all bits (s) |")
    print("|---|---|---|---|---|---|")
    for method, bits, group, err, value, wall in rows:
        wall_s = "-" if wall is None else f"{wall:.1f}"
        print(f"| {method} | {bits} | {group} | {err:.4f} | {value:.2f} | {wall_s} |")


if __name__ == "__main__":
    main()
