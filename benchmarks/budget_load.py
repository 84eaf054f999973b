"""Time the one-call deployment: ``peft_qfa.from_pretrained(supernet, budget=...)`` with every default.

The supernet folder must carry its search data (``peft-qfa train`` saves them), so the budget is the
only input, as in DESIGN's step 4. Prints the load + search + materialize time, the search's own time
and evaluations, the chosen subnet and its held-out perplexity (persuasion.txt).

    python benchmarks/budget_load.py --supernet runs/supernet/ --budget 3.0bits --threads 2
"""

from __future__ import annotations

import argparse
import math
import platform
import time

import torch
from transformers import AutoTokenizer

import peft_qfa
from peft_qfa.search import LossEvaluator
from peft_qfa.testing import austen_texts, smollm2_path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--supernet", required=True, help="a supernet folder saved with its search data")
    parser.add_argument("--budget", default="3.0bits")
    parser.add_argument("--heldout-tokens", type=int, default=8192)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    began = time.perf_counter()
    model = peft_qfa.from_pretrained(args.supernet, budget=args.budget)
    seconds = time.perf_counter() - began
    result = model.qfa_search_result
    choice = result.best()

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path())
    _, heldout = austen_texts()
    ids = tokenizer(heldout[: 10 * args.heldout_tokens], add_special_tokens=False, verbose=False)["input_ids"]
    ppl = math.exp(
        LossEvaluator(torch.tensor(ids[: args.heldout_tokens]), seq_len=512, batch_size=4).score(model)
    )

    print(
        f"\n{args.supernet}, budget {args.budget}; {platform.node()} {platform.machine()}, threads {args.threads}"
    )
    print(
        f"load + search + materialize: {seconds:.1f} s (search {result.seconds:.1f} s, {result.n_evaluations} evaluations)"
    )
    print(
        f"chosen: {choice.cost.avg_bits:.3f} avg bits, {choice.cost.bytes / 1e6:.1f} MB, search loss {choice.score:.4f}"
    )
    print(f"bits per group: {''.join(str(b) for b in choice.subnet.values())}")
    print(f"held-out perplexity ({args.heldout_tokens} tokens of persuasion.txt, windows of 512): {ppl:.2f}")


if __name__ == "__main__":
    main()
