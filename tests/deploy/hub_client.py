"""The client side of the Hub round-trip tests, run in a subprocess pointed at a ``LoopbackHub``.

``huggingface_hub`` reads ``HF_ENDPOINT`` (and ``HF_HUB_OFFLINE``) when it is imported, which the
test process has long done; a fresh process imports it with the loopback hub's address. Usage:

    HF_ENDPOINT=http://127.0.0.1:PORT HF_HUB_OFFLINE=0 python hub_client.py SPEC.json

SPEC names the local folders; the last line printed is a JSON report the tests read.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import types
import urllib.request
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

import peft_qfa


def folder_digest(folder: str) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(Path(folder).iterdir())
        if p.is_file()
    }


@torch.no_grad()
def greedy(model, prompt: list[int]) -> list[int]:
    ids = torch.tensor([prompt])
    return model.generate(ids, max_new_tokens=12, do_sample=False, pad_token_id=0)[0].tolist()


def fail_commits(endpoint: str, times: int) -> None:
    url = f"{endpoint}/_loopback/fail-next-commit?status=500&times={times}"
    urllib.request.urlopen(urllib.request.Request(url, method="POST"))


def skip_backoff_waits() -> None:
    """huggingface_hub waits 1+2+4+8+8 s between its retries of a 500; keep the retries, skip the waiting."""
    import huggingface_hub.utils._http as hub_http

    no_wait = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith("_")})
    no_wait.sleep = lambda seconds: None
    hub_http.time = no_wait


def main(spec_path: str) -> None:
    skip_backoff_waits()
    spec = json.loads(Path(spec_path).read_text())
    prompt, report = spec["prompt"], {}

    # 1. a materialized subnet: model.push_to_hub (with the QFA card), then a fresh from_pretrained(repo_id)
    local = AutoModelForCausalLM.from_pretrained(spec["materialized"])
    url = local.push_to_hub("loopback-user/tiny-qfa-subnet")
    pulled = AutoModelForCausalLM.from_pretrained("loopback-user/tiny-qfa-subnet")
    report["materialized"] = {
        "commit_url": str(url),
        "local": greedy(local, prompt),
        "pulled": greedy(pulled, prompt),
        "pulled_bits": dict(peft_qfa.get_subnet(pulled)),
        "pulled_layer_type": type(pulled.model.layers[0].mlp.down_proj).__name__,
    }

    # 2. a supernet with its adapters: peft_qfa.push_to_hub, then from_pretrained(repo_id, budget=...)
    supernet = AutoModelForCausalLM.from_pretrained(spec["supernet"])  # transformers loads the adapters too
    options = {"generations": 1, "children": 3}
    ids = torch.tensor(spec["search_ids"])
    peft_qfa.push_to_hub(supernet, "loopback-user/tiny-qfa-supernet", search_data=ids)
    from_hub = peft_qfa.from_pretrained(
        "loopback-user/tiny-qfa-supernet", budget=3.0, eval_data=ids, search_options=options
    )
    from_disk = peft_qfa.from_pretrained(spec["supernet"], budget=3.0, eval_data=ids, search_options=options)
    budget_only = AutoModelForCausalLM.from_pretrained(  # scores subnets on the repo's qfa_search_data
        "loopback-user/tiny-qfa-supernet",
        quantization_config=peft_qfa.QFAQuantizationConfig(budget=3.0, search_options=options),
    )
    report["supernet"] = {
        "budget_only_bits": dict(peft_qfa.get_subnet(budget_only)),
        "budget_only": greedy(budget_only, prompt),
        "hub_bits": dict(peft_qfa.get_subnet(from_hub)),
        "disk_bits": dict(peft_qfa.get_subnet(from_disk)),
        "hub": greedy(from_hub, prompt),
        "disk": greedy(from_disk, prompt),
    }

    # 3. the Hub fails commits: one 500 is absorbed by the client's own retries; a persistent one (more than its
    # 5 retries) is a clear error, with local files intact, and pushing again works
    fail_commits(spec["endpoint"], times=1)
    local.push_to_hub("loopback-user/tiny-qfa-absorbed")
    before = folder_digest(spec["materialized"])
    fail_commits(spec["endpoint"], times=6)
    try:
        local.push_to_hub("loopback-user/tiny-qfa-retry")
        error = None
    except peft_qfa.HubPushError as err:
        error = str(err)
    after = folder_digest(spec["materialized"])
    local.push_to_hub("loopback-user/tiny-qfa-retry")
    retried = AutoModelForCausalLM.from_pretrained("loopback-user/tiny-qfa-retry")
    report["failure"] = {
        "error": error,
        "folder_intact": before == after,
        "local_model_still_works": greedy(local, prompt) == report["materialized"]["local"],
        "retried": greedy(retried, prompt),
    }

    # 4. the command line: `peft-qfa push FOLDER REPO`
    from peft_qfa.cli import main as cli

    status = cli(
        ["push", spec["materialized"], "loopback-user/tiny-qfa-cli", "--commit-message", "from the CLI"]
    )
    report["cli"] = {
        "status": status,
        "pulled": greedy(AutoModelForCausalLM.from_pretrained("loopback-user/tiny-qfa-cli"), prompt),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
