"""Build the 2/3/4-bit QFA supernet of SmolLM2-135M-Instruct and report what it costs and how it scores.

Reports: the build time, the peak memory (RSS) while building, the supernet's bytes against the
fp32 and fp16 model, and the held-out perplexity (persuasion.txt, windows of 512 tokens) of the
all-2, all-3 and all-4 subnets and of random mixed subnets, next to their average bits and bytes
(from the project's one cost model, :meth:`peft_qfa.SearchSpace.cost`).

Calibration: the five Austen training novels (persuasion.txt is held out).

    PYTHONPATH=src python benchmarks/supernet_report.py                 # the full run (minutes)
    PYTHONPATH=src python benchmarks/supernet_report.py --samples 16 --eval-tokens 2048 --random-subnets 2

Peak RSS is the process's high-water mark (``resource.getrusage``): it includes the Python,
torch and transformers baseline (printed separately) and the full-precision weights that
``from_pretrained`` reads before the supernet replaces them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import time

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFAQuantizationConfig
from peft_qfa.supernet.cost import supernet_bytes
from peft_qfa.testing import austen_texts, perplexity, smollm2_path

MIB = 2**20


def peak_rss_bytes() -> int:
    """This process's peak resident memory (VmHWM).

    Read from /proc rather than ``resource.getrusage``: on Linux a child started from a large
    process inherits that process's ``ru_maxrss``, which would make the plain-load baseline wrong.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def model_bytes(model: torch.nn.Module, bytes_per_float: int | None = None) -> int:
    """Bytes of every parameter and buffer, shared (tied) storages once; floats at ``bytes_per_float``."""
    seen, total = set(), 0
    for tensor in list(model.parameters()) + list(model.buffers()):
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tensor.shape)
        if key in seen:
            continue
        seen.add(key)
        size = bytes_per_float if (bytes_per_float and tensor.is_floating_point()) else tensor.element_size()
        total += tensor.numel() * size
    return total


def plain_load_peak_rss(path) -> int:
    """Peak RSS of a fresh process that loads the fp32 model and runs it once: the floor of any build."""
    code = (
        "import torch, sys\n"
        f"sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r})\n"
        "from supernet_report import peak_rss_bytes\n"
        "from transformers import AutoModelForCausalLM\n"
        f"model = AutoModelForCausalLM.from_pretrained({str(path)!r}, dtype=torch.float32)\n"
        # one forward reads every weight, so memory-mapped weights count as resident, as in a build
        "model(torch.tensor([[1, 2, 3]]))\n"
        "print(peak_rss_bytes())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(result.stdout.strip().splitlines()[-1])


def rtn_rows(path, space_of_gptq, score) -> list[dict]:
    """The same bit-widths with round-to-nearest (no calibration), for comparison."""
    rtn = AutoModelForCausalLM.from_pretrained(
        path,
        quantization_config=QFAQuantizationConfig(
            bits=space_of_gptq.all_bits, group_size=space_of_gptq.layers[0].group_size, method="rtn"
        ),
        dtype=torch.float32,
    )
    space = peft_qfa.search_space(rtn)
    rows = []
    for bits in space.all_bits:
        log(f"perplexity of RTN all-{bits}")
        peft_qfa.set_subnet(rtn, space.uniform(bits))
        cost = space.cost(space.uniform(bits))
        rows.append(
            {"model": f"RTN all-{bits}", "avg_bits": cost.avg_bits, "bytes": cost.bytes, "ppl": score(rtn)}
        )
    return rows


def fp16_supernet_bytes(space: peft_qfa.SearchSpace) -> int:
    """The same supernet with scales, zeros, biases and full-precision modules stored in fp16."""
    layers = [
        dataclasses.replace(layer, scale_bytes=2, bias_bytes=layer.bias_bytes // 2) for layer in space.layers
    ]
    return supernet_bytes(layers, space.layer_bits_choices, space.other_bytes // 2)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--group-size", type=int, default=64)
    parser.add_argument("--method", choices=["gptq", "rtn"], default="gptq")
    parser.add_argument("--samples", type=int, default=128, help="calibration windows")
    parser.add_argument(
        "--seq-len", type=int, default=512, help="tokens per calibration and evaluation window"
    )
    parser.add_argument("--eval-tokens", type=int, default=16384, help="held-out tokens scored per subnet")
    parser.add_argument("--random-subnets", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--compare-rtn", action="store_true", help="also score RTN at each uniform bit-width")
    parser.add_argument("--save", default=None, help="also save the supernet to this folder")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    path = smollm2_path()
    train_texts, heldout_text = austen_texts()
    tokenizer = AutoTokenizer.from_pretrained(path)
    rss_before = peak_rss_bytes()

    log(f"building the {args.method} supernet, bits {args.bits}, {args.samples} x {args.seq_len} tokens")
    start = time.perf_counter()
    config = QFAQuantizationConfig(
        bits=tuple(args.bits),
        group_size=args.group_size,
        method=args.method,
        calibration=train_texts if args.method == "gptq" else None,
        calibration_seq_len=args.seq_len,
        calibration_samples=args.samples,
    )
    supernet = AutoModelForCausalLM.from_pretrained(path, quantization_config=config, dtype=torch.float32)
    build_s = time.perf_counter() - start
    rss_peak_build = peak_rss_bytes()
    log(f"built in {build_s:.0f} s; peak RSS {rss_peak_build / MIB:.0f} MiB")
    rss_plain_load = plain_load_peak_rss(path)
    if args.save:
        supernet.save_pretrained(args.save)

    space = peft_qfa.search_space(supernet)
    calibration_tokens = supernet.config.quantization_config.calibration_tokens
    fp_model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    sizes = {
        "fp32 model": model_bytes(fp_model),
        "fp16 model": model_bytes(fp_model, bytes_per_float=2),
        "supernet as built (fp32 scales/zeros/embeddings)": space.supernet_bytes(),
        "supernet with fp16 scales/zeros/embeddings": fp16_supernet_bytes(space),
    }

    def score(model) -> float:
        return perplexity(model, tokenizer, heldout_text, seq_len=args.seq_len, max_tokens=args.eval_tokens)

    rows = []
    log("perplexity of the fp32 model")
    rows.append(
        {"model": "fp32 (reference)", "avg_bits": 32.0, "bytes": sizes["fp32 model"], "ppl": score(fp_model)}
    )
    del fp_model
    subnets = [(f"all-{b}", space.uniform(b)) for b in space.all_bits]
    subnets += [(f"random seed {s}", space.sample(seed=s)) for s in range(args.random_subnets)]
    for label, subnet in subnets:
        log(f"perplexity of {label}")
        peft_qfa.set_subnet(supernet, subnet)
        cost = space.cost(subnet)
        rows.append(
            {
                "model": label,
                "avg_bits": cost.avg_bits,
                "bytes": cost.bytes,
                "ppl": score(supernet),
                "bits": list(subnet.values()),
            }
        )
    if args.compare_rtn and args.method == "gptq":
        del supernet
        rows += rtn_rows(path, space, score)

    command = "PYTHONPATH=src python " + " ".join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    print(
        f"# QFA supernet report: SmolLM2-135M-Instruct, {args.method}, bits {tuple(args.bits)}, g{args.group_size}"
    )
    print()
    print(f"- command: `{command}`")
    print(
        f"- date: {datetime.date.today()}, machine: {platform.machine()} {os.cpu_count()} CPUs, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), transformers {transformers.__version__}"
    )
    calibration = (
        f"{calibration_tokens} tokens ({args.samples} x {args.seq_len}) from the five Austen training novels"
        if args.method == "gptq"
        else "none (rtn)"
    )
    print(
        f"- calibration: {calibration}; held-out: persuasion.txt, first {args.eval_tokens} tokens, "
        f"windows of {args.seq_len}"
    )
    print(
        f"- build time: {build_s:.0f} s ({len(space.layers)} layers, {len(space)} {space.granularity} groups)"
    )
    print(
        f"- peak RSS while building: {rss_peak_build / MIB:.0f} MiB (baseline before building: "
        f"{rss_before / MIB:.0f} MiB; a fresh process that loads and runs the fp32 model peaks at "
        f"{rss_plain_load / MIB:.0f} MiB)"
    )
    print()
    print("| storage | MiB | vs fp32 | vs fp16 |")
    print("|---|---:|---:|---:|")
    for name, size in sizes.items():
        print(
            f"| {name} | {size / MIB:.1f} | {size / sizes['fp32 model']:.3f} | {size / sizes['fp16 model']:.3f} |"
        )
    print()
    print("| subnet | avg bits | MiB (materialized) | held-out ppl | bits per block |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        bits = "".join(map(str, row.get("bits", []))) or "-"
        print(
            f"| {row['model']} | {row['avg_bits']:.3f} | {row['bytes'] / MIB:.1f} | {row['ppl']:.2f} | {bits} |"
        )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "command": command,
                    "build_s": build_s,
                    "peak_rss_build": rss_peak_build,
                    "rss_before_build": rss_before,
                    "rss_plain_load": rss_plain_load,
                    "sizes": sizes,
                    "rows": rows,
                },
                f,
                indent=2,
            )


if __name__ == "__main__":
    main()
