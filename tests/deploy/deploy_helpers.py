"""Helpers of the deploy tests (a plain module, importable by name from the test files and conftest)."""

from __future__ import annotations

import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from peft_qfa import QFAConfig

GROUP_SIZE = 32
# Random, nonzero adapters (as in the tuner tests): they move the logits by a few percent, so a merge that
# dropped them would fail the equality checks, while the fp32 merge stays far inside the 1e-5 bound.
NONZERO_ADAPTER = {"r": 2, "lora_alpha": 0.5, "init_weights": False}


def with_adapters(supernet_dir, seed: int = 0):
    """The saved supernet with fresh nonzero QFA adapters (same seed, same adapters)."""
    supernet = AutoModelForCausalLM.from_pretrained(supernet_dir).eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(supernet, QFAConfig(**NONZERO_ADAPTER)).eval()


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return ((actual - expected).norm() / expected.norm()).item()


@torch.no_grad()
def logits(model, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids).logits


@torch.no_grad()
def greedy(model, ids: torch.Tensor, n: int = 12) -> torch.Tensor:
    return model.generate(ids, max_new_tokens=n, do_sample=False, pad_token_id=0)
