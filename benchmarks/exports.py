"""Exports of SmolLM2 subnets: file size and held-out perplexity per format, and decode speed against llama.cpp.

For a uniform 3-bit subnet and a searched 2.5-bit subnet of a QFA supernet this script writes:

* the native folder (``save_pretrained``; loads after ``import peft_qfa``);
* the HQQ folder (``peft_qfa.export(..., format="hqq")``), read back by the stock loader of docs/export.md
  (transformers + hqq, no peft_qfa), evaluated in float32;
* the GGUF file with every quantized layer as exact Q4_1 blocks, evaluated in llama.cpp and, as a second
  reader, rebuilt by transformers' own GGUF loader;
* GGUF K-quants requantized by llama.cpp (``--kquants``), evaluated in llama.cpp;

and scores each on the same windows of held-out text (persuasion.txt). Then it times greedy decoding at
batch 1 (a 32-token prompt, 32 new tokens): ours (the bf16 packed model on torch's CPU int4 kernel) against
llama.cpp on the Q4_1 file, same thread count, interleaved A B / B A over ``--rounds`` rounds.

    python benchmarks/exports.py --threads 1
    python benchmarks/exports.py --supernet runs/supernet/ --threads 1 --kquants Q3_K_M Q2_K

Needs hqq, gguf and llama-cpp-python. Run it alone: timings on a shared machine are noise.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from _common import cached_supernet
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa.ops import refresh_switches
from peft_qfa.testing import austen_texts, smollm2_path
from peft_qfa.windows import cut_windows

SEQ_LEN = 512


def folder_mb(path: Path) -> float:
    files = (
        [path]
        if path.is_file()
        else [p for p in path.rglob("*") if p.is_file() and "tokenizer" not in p.name]
    )
    return sum(p.stat().st_size for p in files) / 1e6


def stock_hqq_model(folder: Path):
    """The loader of docs/export.md: transformers builds the model, hqq's HQQLinear reads each quantized layer."""
    from hqq.core.quantize import HQQLinear
    from safetensors.torch import load_file
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(folder)
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    state = load_file(folder / "model.safetensors")
    for name in sorted({key.rsplit(".", 1)[0] for key in state if key.endswith(".W_q")}):
        layer = HQQLinear(None, None, compute_dtype=torch.float32, device="cpu", initialize=False)
        layer.load_state_dict(
            {k[len(name) + 1 :]: state.pop(k) for k in list(state) if k.startswith(name + ".")}
        )
        model.set_submodule(name, layer)
    model.load_state_dict(state, strict=False)
    model.tie_weights()
    return model.eval()


def nll_sum(log_probs_of_next) -> tuple[float, int]:
    """(summed NLL, predicted tokens) from an iterable of (logits [n, vocab] float32, targets [n])."""
    total, count = 0.0, 0
    for logits, targets in log_probs_of_next:
        logits = torch.as_tensor(logits, dtype=torch.float32)
        total += torch.nn.functional.cross_entropy(logits, torch.as_tensor(targets), reduction="sum").item()
        count += len(targets)
    return total, count


@torch.no_grad()
def torch_perplexity(model, windows: list[torch.Tensor]) -> float:
    def pairs():
        for window in windows:
            yield model(input_ids=window[None]).logits[0, :-1].float(), window[1:]

    total, count = nll_sum(pairs())
    return math.exp(total / count)


def llama_perplexity(path: Path, windows: list[torch.Tensor], threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(str(path), n_ctx=SEQ_LEN, n_batch=SEQ_LEN, n_threads=threads, logits_all=True, verbose=False)

    def pairs():
        for window in windows:
            llm.reset()
            llm.eval(window.tolist())
            yield np.array(llm.scores[: len(window) - 1]), window[1:]

    total, count = nll_sum(pairs())
    llm.close()
    return math.exp(total / count)


@torch.no_grad()
def ours_generate(model, prompt: list[int], new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    out = model.generate(
        ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        do_sample=False,
    )
    return out[0, len(prompt) :].tolist()


def llama_generate(llm, prompt: list[int], new_tokens: int) -> list[int]:
    """Greedy tokens from llama.cpp's own sampler (``temp=0`` is greedy), ``new_tokens`` of them."""
    tokens = []
    for token in llm.generate(prompt, temp=0.0, top_k=1, reset=True):
        tokens.append(int(token))
        if len(tokens) == new_tokens:
            break
    return tokens


def timed(generate) -> tuple[float, list[int]]:
    began = time.perf_counter()
    tokens = generate()
    return time.perf_counter() - began, tokens


def llama_rows(packed, label, tag, q4_1, windows, tokenizer, out: Path, args) -> list[tuple]:
    """llama.cpp's perplexity on the exact Q4_1 file and on each K-quant of the subnet."""
    rows = [(label, "gguf Q4_1 (llama.cpp)", folder_mb(q4_1), llama_perplexity(q4_1, windows, args.threads))]
    print(rows[-1], flush=True)
    for kind in args.kquants:
        path = peft_qfa.export(
            packed, out / f"{tag}_{kind}.gguf", tokenizer=tokenizer, format="gguf", gguf_type=kind
        )
        rows.append(
            (
                label,
                f"gguf {kind} (llama.cpp)",
                folder_mb(path),
                llama_perplexity(path, windows, args.threads),
            )
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--supernet", help="a saved supernet folder; default: the cached GPTQ g64 supernet")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--eval-tokens", type=int, default=4096, help="held-out tokens for perplexity")
    parser.add_argument(
        "--search-tokens", type=int, default=2048, help="tokens of a training novel the search scores"
    )
    parser.add_argument("--kquants", nargs="*", default=["Q3_K_M", "Q2_K"])
    parser.add_argument("--rounds", type=int, default=4, help="timing rounds (A B, then B A, ...)")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--out", default="benchmarks/out/exports")
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["torch", "llama", "speed"],
        default=["torch", "llama", "speed"],
        help="torch: native, hqq, transformers' GGUF reader; llama: llama.cpp perplexity, K-quants; speed: decoding",
    )
    parser.add_argument(
        "--search-only", action="store_true", help="run (and keep) the 2.5-bit search, then stop"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    train_texts, heldout = austen_texts()
    held_ids = tokenizer(heldout[:60_000], add_special_tokens=False, verbose=False)["input_ids"]
    windows = cut_windows(torch.tensor(held_ids[: args.eval_tokens]), SEQ_LEN, None, keep_tail=False)
    prompt = held_ids[: args.prompt_tokens]
    search_ids = tokenizer(train_texts[-1][-40_000:], add_special_tokens=False, verbose=False)["input_ids"]
    search_ids = torch.tensor(search_ids[-args.search_tokens :])

    supernet_dir = args.supernet or cached_supernet("gptq")
    supernet = AutoModelForCausalLM.from_pretrained(supernet_dir, dtype=torch.float32).eval()
    space = peft_qfa.search_space(supernet)
    searched_file = out / "searched_2p5.json"  # the search is the slow part: kept for reruns
    if searched_file.is_file():
        saved = json.loads(searched_file.read_text())
        searched, search_s = space.subnet(saved["subnet"]), saved["seconds"]
    else:
        began = time.perf_counter()
        searched = peft_qfa.search_subnet(supernet, 2.5, search_ids, seq_len=SEQ_LEN).subnet
        search_s = time.perf_counter() - began
        searched_file.write_text(json.dumps({"subnet": dict(searched), "seconds": search_s}))
    subnets = {"uniform 3-bit": space.uniform(3), "searched 2.5-bit": searched}
    print(f"search: {search_s:.0f} s", flush=True)
    if args.search_only:
        return

    rows, speeds, notes = [], [], {}
    for label, subnet in subnets.items():
        tag = label.replace(" ", "_").replace(".", "p")
        packed = peft_qfa.materialize(supernet, subnet).eval()
        bits = "".join(str(subnet[g]) for g in sorted(subnet, key=lambda g: int(g.rsplit(".", 1)[-1])))
        notes[label] = bits
        q4_1 = peft_qfa.export(packed, out / f"{tag}_q4_1.gguf", tokenizer=tokenizer, format="gguf")
        if "torch" in args.parts:
            native = peft_qfa.export(packed, out / f"{tag}_native", format="native")
            rows.append((label, "native (peft_qfa)", folder_mb(native), torch_perplexity(packed, windows)))
            print(rows[-1], flush=True)
            hqq = peft_qfa.export(packed, out / f"{tag}_hqq", format="hqq")
            hqq_ppl = torch_perplexity(stock_hqq_model(hqq), windows)
            rows.append((label, "hqq (transformers + hqq)", folder_mb(hqq), hqq_ppl))
            print(rows[-1], flush=True)
            reread = AutoModelForCausalLM.from_pretrained(
                q4_1.parent, gguf_file=q4_1.name, dtype=torch.float32
            )
            gguf_ppl = torch_perplexity(reread.eval(), windows)
            rows.append((label, "gguf Q4_1 (transformers' GGUF reader)", folder_mb(q4_1), gguf_ppl))
            print(rows[-1], flush=True)
            del reread
        if "llama" in args.parts:
            rows += llama_rows(packed, label, tag, q4_1, windows, tokenizer, out, args)
        if "speed" not in args.parts:
            continue
        from llama_cpp import Llama

        ours = copy.deepcopy(packed).to(torch.bfloat16)  # the bf16 packed model: torch's CPU int4 kernel
        os.environ.pop("QFA_CPU_INT4", None)
        refresh_switches()
        llm = Llama(str(q4_1), n_ctx=256, n_batch=256, n_threads=args.threads, verbose=False)
        configs = {
            "ours, bf16 int4 kernel": functools.partial(ours_generate, ours, prompt, args.new_tokens),
            "llama.cpp, same Q4_1 file": functools.partial(llama_generate, llm, prompt, args.new_tokens),
        }
        for generate in configs.values():
            generate()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in configs}
        tokens: dict[str, list[int]] = {}
        for round_ in range(args.rounds):
            order = list(configs) if round_ % 2 == 0 else list(configs)[::-1]
            for name in order:
                seconds, tokens[name] = timed(configs[name])
                times[name].append(seconds)
        llm.close()
        first, second = (tokens[name] for name in configs)
        agree = next((i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b), len(first))
        for name, seconds in times.items():
            rates = sorted(args.new_tokens / s for s in seconds)
            speeds.append((label, name, rates[0], statistics.median(rates), rates[-1], agree))
            print(speeds[-1], flush=True)
        del ours, packed

    print(
        f"\nSmolLM2-135M-Instruct, supernet {supernet_dir}; 2.5-bit subnet searched on {args.search_tokens} tokens "
        f"of the last training novel ({search_s:.0f} s); perplexity on {len(windows)} windows of {SEQ_LEN} "
        f"tokens of persuasion.txt; machine {platform.node()} {platform.machine()}, torch {torch.__version__}, "
        f"threads {args.threads}"
    )
    for label, bits in notes.items():
        print(f"bits per block, {label}: {bits}")
    print("\n| subnet | format | size (MB) | held-out ppl |\n|---|---|---:|---:|")
    for label, fmt, mb, ppl in rows:
        print(f"| {label} | {fmt} | {mb:.1f} | {ppl:.2f} |")
    print(
        f"\n| subnet | decoder ({args.threads} thread) | tokens/s min | median | max | greedy tokens agreeing |"
        "\n|---|---|---:|---:|---:|---:|"
    )
    for label, name, low, mid, high, agree in speeds:
        print(f"| {label} | {name} | {low:.2f} | {mid:.2f} | {high:.2f} | {agree}/{args.new_tokens} |")
    (out / f"exports_{'_'.join(args.parts)}.json").write_text(
        json.dumps({"rows": rows, "speeds": speeds, "bits": notes}, indent=2)
    )


if __name__ == "__main__":
    main()
