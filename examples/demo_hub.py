"""The Hub side of the demo: push materialized models to a loopback Hub, pull one back, generate from it.

``examples/demo.py`` runs this file in a child process, because ``huggingface_hub`` fixes its
endpoint (``HF_ENDPOINT``) and offline mode when it is first imported, and the demo imported it
long before it started its ``LoopbackHub`` (``tests/deploy/loopback_hub.py``). The child is an ordinary Hub
client: ``model.push_to_hub`` (with the QFA model card and Pareto plot), ``tokenizer.push_to_hub``,
then a fresh ``AutoModelForCausalLM.from_pretrained(repo_id)``. Usage:

    HF_ENDPOINT=http://127.0.0.1:PORT HF_HUB_OFFLINE=0 HF_TOKEN=any python examples/demo_hub.py SPEC.json

SPEC: ``{"push": {repo_id: folder}, "pull": repo_id, "prompt_ids": [...], "new_tokens": n}``. The last
line printed is a JSON report: the commit URL of each push, and the pulled model's greedy token ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from demo import timed_greedy  # demo.py lies beside this file (sys.path[0])
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa  # registers the "qfa" quantization method that the pulled config names


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    commits = {}
    for repo_id, folder in spec["push"].items():
        model = AutoModelForCausalLM.from_pretrained(folder)
        commits[repo_id] = str(
            model.push_to_hub(repo_id, commit_message="peft-qfa demo: materialized subnet")
        )
        AutoTokenizer.from_pretrained(folder).push_to_hub(repo_id, commit_message="peft-qfa demo: tokenizer")
        print(f"pushed {folder} -> {repo_id}", file=sys.stderr, flush=True)
        del model

    pulled = AutoModelForCausalLM.from_pretrained(spec["pull"])
    tokenizer = AutoTokenizer.from_pretrained(spec["pull"])
    prompt = torch.tensor([spec["prompt_ids"]])
    n = spec["new_tokens"]
    ids, _ = timed_greedy(pulled, prompt, n)  # the same generation settings as the local model's
    print(
        json.dumps(
            {
                "commits": commits,
                "pulled": spec["pull"],
                "pulled_ids": ids,
                "pulled_text": tokenizer.decode(ids, skip_special_tokens=True),
                "pulled_avg_bits": peft_qfa.search_space(pulled).cost(peft_qfa.get_subnet(pulled)).avg_bits,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
