"""Fixtures of the search tests: a tiny saved supernet (with a tiny tokenizer) and token ids to score on."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from peft_qfa import QFAQuantizationConfig
from peft_qfa.testing import char_tokenizer, single_torch_thread, tiny_llama, tiny_token_batches

from .search_helpers import GROUP_SIZE


@pytest.fixture(scope="session")
def supernet_dir(tmp_path_factory):
    """A saved 4-block RTN supernet (bits 2/3/4, group size 32) of a tiny random Llama, with its tokenizer."""
    root = tmp_path_factory.mktemp("search_supernet")
    tiny_llama(seed=0, num_hidden_layers=4).save_pretrained(root / "fp")
    supernet = AutoModelForCausalLM.from_pretrained(
        root / "fp",
        quantization_config=QFAQuantizationConfig(bits=(2, 3, 4), group_size=GROUP_SIZE, method="rtn"),
    )
    supernet.save_pretrained(root / "supernet")
    char_tokenizer().save_pretrained(root / "supernet")
    return root / "supernet"


@pytest.fixture
def supernet(supernet_dir):
    return AutoModelForCausalLM.from_pretrained(supernet_dir).eval()


@pytest.fixture(scope="session")
def search_ids() -> torch.Tensor:
    return tiny_token_batches(2, 24, seed=7)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (see `peft_qfa.testing.single_torch_thread`)."""
    with single_torch_thread():
        yield
