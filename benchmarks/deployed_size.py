"""File size and held-out perplexity of the deployed 3-bit SmolLM2 as its embedding is stored ever smaller.

The cached RTN (or GPTQ) supernet of ``benchmarks/_common.py`` is materialized at all-3 bits, no
adapters, four ways: everything float32 (exact merged zero points), 16-bit float tensors (the
default), and 16-bit with the embedding and tied head packed at 8 and at 4 bits. Each is saved,
its ``model.safetensors`` measured, reloaded with ``dtype=torch.float32`` (so only the stored
values differ, not the arithmetic) and scored on the first ``--eval-tokens`` tokens of the held-out
``persuasion.txt`` in windows of 512, as ``benchmarks/clip_search.py`` does.

    python benchmarks/deployed_size.py [--method rtn|gptq] [--eval-tokens 8192] [--threads 1]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch
from _common import cached_supernet
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa.testing import austen_texts, perplexity, smollm2_path

SETTINGS = {
    "fp32 (exact)": {"deploy_dtype": "float32"},
    "16-bit": {},
    "16-bit, 8-bit embedding": {"embedding_bits": 8},
    "16-bit, 4-bit embedding": {"embedding_bits": 4},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("rtn", "gptq"), default="rtn")
    parser.add_argument("--bits", type=int, default=3)
    parser.add_argument("--eval-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    _, heldout = austen_texts()
    ids = tokenizer(heldout[: 10 * args.eval_tokens], add_special_tokens=False, verbose=False)["input_ids"]
    eval_ids = torch.tensor(ids[: args.eval_tokens])
    supernet = AutoModelForCausalLM.from_pretrained(cached_supernet(args.method), dtype=torch.float32)
    subnet = peft_qfa.search_space(supernet).uniform(args.bits)

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, settings in SETTINGS.items():
            start = time.perf_counter()
            packed = peft_qfa.materialize(supernet, subnet, **settings)
            predicted = peft_qfa.search_space(packed).cost(peft_qfa.get_subnet(packed)).bytes
            folder = Path(tmp) / label.replace(" ", "_").replace(",", "")
            packed.save_pretrained(folder)
            del packed
            size = (folder / "model.safetensors").stat().st_size
            reloaded = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
            ppl = perplexity(reloaded, eval_ids, seq_len=512)
            del reloaded
            rows.append((label, size, predicted, ppl))
            print(f"{label}: {size / 1e6:.2f} MB file, ppl {ppl:.3f} ({time.perf_counter() - start:.0f} s)", flush=True)

    reference = rows[1][3]
    print(
        f"\nSmolLM2-135M-Instruct, {args.method.upper()} supernet, all-{args.bits} subnet (no adapters), group size 64; "
        f"held-out persuasion.txt, first {args.eval_tokens} tokens, windows of 512, evaluated in float32.\n"
        f"{datetime.date.today()}, {platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)\n"
    )
    print("| stored as | model.safetensors | cost model | held-out ppl | vs 16-bit |")
    print("|---|---:|---:|---:|---:|")
    for label, size, predicted, ppl in rows:
        print(f"| {label} | {size / 1e6:.2f} MB | {predicted / 1e6:.2f} MB | {ppl:.3f} | {100 * (ppl / reference - 1):+.2f}% |")


if __name__ == "__main__":
    main()
