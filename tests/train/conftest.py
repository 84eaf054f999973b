"""Search spaces built from layer shapes (no model) and a tiny supernet with QFA adapters for Trainer tests."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from peft_qfa import QFAConfig, QFAQuantizationConfig, SearchSpace
from peft_qfa.supernet.cost import LayerShape
from peft_qfa.testing import char_tokenizer, single_torch_thread, tiny_llama, tiny_token_batches

N_GROUPS = 32
BITS = (2, 3, 4)


def block_space(n_groups: int = N_GROUPS, bits: tuple[int, ...] = BITS, layers_per_block: int = 2) -> SearchSpace:
    """A block-granularity space of ``n_groups`` equal decoder blocks (LLaMA-like), built from shapes alone."""
    shapes = [
        LayerShape(f"model.layers.{i}.mlp.{proj}", 64, 64, 32, 2, 0)
        for i in range(n_groups)
        for proj in ("up_proj", "down_proj")[:layers_per_block]
    ]
    return SearchSpace(shapes, {s.name: bits for s in shapes}, "block", other_bytes=0)


@pytest.fixture(scope="session")
def space32() -> SearchSpace:
    return block_space()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny_llama_train")
    tiny_llama(seed=0).save_pretrained(folder)
    return str(folder)


def _build_tiny_qfa_model(model_dir: str, seed: int = 0):
    """A tiny 2-block supernet (RTN, bits 2/3/4, group size 32) with fresh QFA adapters; same seed, same model."""
    supernet = AutoModelForCausalLM.from_pretrained(
        model_dir, quantization_config=QFAQuantizationConfig(bits=BITS, group_size=32, method="rtn")
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return get_peft_model(supernet, QFAConfig(r=2, lora_alpha=4, target_modules="all-linear"))


def lm_dataset(n: int = 24, seq_len: int = 16, seed: int = 0) -> list[dict]:
    ids = tiny_token_batches(n, seq_len, seed=seed)
    return [{"input_ids": row, "labels": row} for row in ids]


@pytest.fixture(scope="session")
def make_block_space():
    return block_space


@pytest.fixture(scope="session")
def make_qfa_model(tiny_model_dir):
    """``make_qfa_model(seed=0)``: a fresh tiny supernet with QFA adapters (identical for identical seeds)."""
    return lambda seed=0: _build_tiny_qfa_model(tiny_model_dir, seed)


@pytest.fixture(scope="session")
def make_lm_dataset():
    return lm_dataset


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models train several times faster on one thread than on two busy cores (thread hand-offs dominate)."""
    with single_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_model_with_tokenizer_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("tiny_llama_tok")
    tiny_llama(seed=0).save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    return str(folder)
