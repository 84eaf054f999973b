"""Benchmark the qfa_kernels low-bit linear against fp16 dense and dequantize-then-matmul on CUDA.

For each weight shape ``N x K`` (out x in features), bit-width and number of activation rows it
prints the kernel time, the bandwidth it achieved (bytes that must move: packed weight, scales,
zeros, x read and y written), its TFLOP/s, the speed-up over ``torch.mm`` with the dense fp16
weight and over dequantizing with the torch reference and then multiplying, and the fraction of
the device-to-device copy bandwidth measured in the same run (the roofline of a memory-bound
kernel). The L2 cache is flushed before every timed call, so a weight is never served from L2.
The flush is queued before the start event and keeps the GPU busy while Python validates and
launches, so the times are GPU time (CUDA events), not end-to-end latency including launch overhead.

Usage::

    python benchmarks/kernels.py                       # LLaMA-7B/13B shapes, 2/3/4 bits, rows 1/16/256/2048
    python benchmarks/kernels.py --shapes 4096x11008 --bits 4 --rows 1
    python benchmarks/kernels.py --cpu-smoke           # no GPU: one tiny shape through the torch path

Without CUDA (and without ``--cpu-smoke``) it prints why and exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    import qfa_kernels
except ImportError:  # running from a source checkout that is not pip-installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels" / "build" / "torch-universal"))
    import qfa_kernels

LLAMA_SHAPES = "4096x4096,11008x4096,4096x11008,13824x5120"
"""N x K: 7B q/k/v/o, 7B up/gate (4096 -> 11008), 7B down (11008 -> 4096), 13B up/gate (5120 -> 13824)."""

# Speed-up over fp16 that batch-1 decode should reach on the 4096x11008 down projection, and the
# fraction of copy bandwidth; batch 2048 may be at most this much slower than fp16.
DECODE_SPEEDUP_TARGET = {2: 4.5, 3: 3.5, 4: 3.0}
DECODE_BANDWIDTH_TARGET = 0.70
PREFILL_SLOWDOWN_LIMIT = 1.3
TARGET_SHAPE = (4096, 11008)

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def parse_shapes(text: str) -> list[tuple[int, int]]:
    try:
        return [tuple(int(v) for v in item.lower().split("x")) for item in text.split(",") if item]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shapes expects NxK[,NxK...], got {text!r}") from None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", type=parse_shapes, default=parse_shapes(LLAMA_SHAPES), help="NxK list")
    parser.add_argument("--bits", type=int, nargs="+", default=[2, 3, 4], choices=qfa_kernels.SUPPORTED_BITS)
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1, 16, 256, 2048], help="rows of x (batch x tokens)"
    )
    parser.add_argument("--group-size", type=int, default=128)
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16")
    parser.add_argument("--warmup", type=int, default=10, help="untimed calls (the first one autotunes)")
    parser.add_argument("--reps", type=int, default=50, help="timed calls; the median is reported")
    parser.add_argument(
        "--cpu-smoke", action="store_true", help="no GPU needed: one tiny shape, torch backend"
    )
    return parser.parse_args(argv)


def random_layer(n: int, k: int, bits: int, group_size: int, dtype: torch.dtype, device) -> dict:
    """Any int32 bit pattern is a valid packed row, so random words are a valid random weight."""
    words = qfa_kernels.packed_words(k, bits)
    return {
        "packed": torch.randint(-(2**31), 2**31 - 1, (n, words), dtype=torch.int32, device=device),
        "scales": (torch.rand(n, k // group_size, device=device) * 2 / (2**bits * k**0.5)).to(dtype),
        "zeros": (torch.rand(n, k // group_size, device=device) * (2**bits - 1)).to(dtype),
    }


class CudaTimer:
    """Median time of a callable, measured with CUDA events around each call after an L2 flush."""

    def __init__(self, warmup: int, reps: int):
        self.warmup, self.reps = warmup, reps
        l2_bytes = getattr(torch.cuda.get_device_properties(0), "L2_cache_size", 64 << 20)
        self.flush_buffer = torch.empty(max(4 * l2_bytes, 256 << 20), dtype=torch.uint8, device="cuda")

    def __call__(self, fn) -> float:
        for _ in range(self.warmup):
            fn()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(self.reps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(self.reps)]
        for start, end in zip(starts, ends, strict=True):
            self.flush_buffer.zero_()
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return (
            statistics.median(s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)) * 1e-3
        )  # seconds


def copy_bandwidth(timer: CudaTimer, nbytes: int = 1 << 30) -> float:
    """Device-to-device copy bandwidth in bytes/s (read + write), the memory roofline of this GPU."""
    src = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    seconds = timer(lambda: dst.copy_(src))
    return 2 * nbytes / seconds


def measure(n, k, bits, rows, args, dtype, device, time_fn) -> dict:
    layer = random_layer(n, k, bits, args.group_size, dtype, device)
    x = torch.randn(rows, k, dtype=dtype, device=device)
    y = torch.empty(rows, n, dtype=dtype, device=device)
    dense = torch.randn(n, k, dtype=dtype, device=device) / k**0.5
    common = {"bits": bits, "group_size": args.group_size, "in_features": k}
    backend = "torch" if args.cpu_smoke else "triton"

    def kernel():
        return qfa_kernels.wna16_linear(x, **layer, **common, backend=backend, out=y)

    def fp16_dense():
        return torch.mm(x, dense.T)

    def dequantize_then_matmul():
        return torch.mm(
            x,
            qfa_kernels.dequantize(
                **layer, bits=bits, group_size=args.group_size, in_features=k, dtype=dtype
            ).T,
        )

    reference = qfa_kernels.reference_linear(x, **layer, **common)
    kernel()
    rel_err = (
        (y.float() - reference.float()).abs().max() / reference.float().abs().max().clamp(min=1e-30)
    ).item()

    seconds = time_fn(kernel)
    moved = sum(t.numel() * t.element_size() for t in (*layer.values(), x, y))
    return {
        "seconds": seconds,
        "bytes_per_s": moved / seconds,
        "flops_per_s": 2 * rows * n * k / seconds,
        "fp16_seconds": time_fn(fp16_dense),
        "dequant_seconds": time_fn(dequantize_then_matmul),
        "rel_err": rel_err,
    }


def cpu_time_fn(warmup: int, reps: int):
    def time_fn(fn) -> float:
        for _ in range(warmup):
            fn()
        samples = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    return time_fn


HEADER = (
    f"{'N x K':>12} {'bits':>4} {'rows':>5} {'time us':>9} {'GB/s':>7} {'%copy':>6} {'TFLOP/s':>8} "
    f"{'dense us':>9} {'vs dense':>8} {'deq+mm us':>10} {'vs deq':>7} {'rel err':>8}"
)


def format_row(n, k, bits, rows, r, copy_bytes_per_s) -> str:
    copy_pct = f"{100 * r['bytes_per_s'] / copy_bytes_per_s:6.1f}" if copy_bytes_per_s else f"{'-':>6}"
    return (
        f"{f'{n}x{k}':>12} {bits:>4} {rows:>5} {r['seconds'] * 1e6:9.1f} {r['bytes_per_s'] / 1e9:7.1f} {copy_pct} "
        f"{r['flops_per_s'] / 1e12:8.2f} {r['fp16_seconds'] * 1e6:9.1f} {r['fp16_seconds'] / r['seconds']:7.2f}x "
        f"{r['dequant_seconds'] * 1e6:10.1f} {r['dequant_seconds'] / r['seconds']:6.2f}x {r['rel_err']:8.1e}"
    )


def check_targets(results: dict, copy_bytes_per_s: float) -> list[str]:
    """PASS/MISS lines for the project's speed targets on the shapes and rows that were run."""
    lines = []
    for (n, k, bits, rows), r in sorted(results.items()):
        if (n, k) != TARGET_SHAPE:
            continue
        speedup = r["fp16_seconds"] / r["seconds"]
        if rows == 1 and bits in DECODE_SPEEDUP_TARGET:
            fraction = r["bytes_per_s"] / copy_bytes_per_s
            ok = speedup >= DECODE_SPEEDUP_TARGET[bits] and fraction >= DECODE_BANDWIDTH_TARGET
            lines.append(
                f"{'PASS' if ok else 'MISS'} {n}x{k} {bits}-bit rows=1: {speedup:.2f}x fp16 (target "
                f">= {DECODE_SPEEDUP_TARGET[bits]}x), {100 * fraction:.0f}% of copy bandwidth (target >= "
                f"{100 * DECODE_BANDWIDTH_TARGET:.0f}%)"
            )
        if rows == 2048:
            slowdown = r["seconds"] / r["fp16_seconds"]
            ok = slowdown <= PREFILL_SLOWDOWN_LIMIT
            lines.append(
                f"{'PASS' if ok else 'MISS'} {n}x{k} {bits}-bit rows=2048: {slowdown:.2f}x the fp16 time "
                f"(limit {PREFILL_SLOWDOWN_LIMIT}x)"
            )
    return lines


def main(argv=None) -> int:
    args = parse_args(argv)
    dtype = DTYPES[args.dtype]
    if args.cpu_smoke:
        device, copy_bytes_per_s = "cpu", None
        args.shapes, args.bits, args.rows, args.group_size = [(64, 128)], [4], [1, 16], 32
        time_fn = cpu_time_fn(warmup=1, reps=3)
        print("CPU smoke run: torch backend, one tiny shape; the numbers exercise the script, nothing more.")
    elif not torch.cuda.is_available():
        print(
            "benchmarks/kernels.py needs a CUDA GPU (torch.cuda.is_available() is False); nothing to measure. "
            "Use --cpu-smoke to exercise the script on the CPU."
        )
        return 0
    else:
        device = "cuda"
        timer = CudaTimer(args.warmup, args.reps)
        time_fn = timer
        copy_bytes_per_s = copy_bandwidth(timer)
        print(
            f"{torch.cuda.get_device_name()} | torch {torch.__version__} | {args.dtype} activations, "
            f"group size {args.group_size} | device-to-device copy: {copy_bytes_per_s / 1e9:.0f} GB/s"
        )

    print(HEADER)
    results = {}
    for n, k in args.shapes:
        for bits in args.bits:
            for rows in args.rows:
                r = measure(n, k, bits, rows, args, dtype, device, time_fn)
                results[(n, k, bits, rows)] = r
                print(format_row(n, k, bits, rows, r, copy_bytes_per_s), flush=True)
    if copy_bytes_per_s:
        for line in check_targets(results, copy_bytes_per_s):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
