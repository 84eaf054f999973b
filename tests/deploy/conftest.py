"""Fixtures of the deploy tests: tiny saved supernets, one folder with supernet + trained-looking adapters."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFAQuantizationConfig
from peft_qfa.testing import char_tokenizer, single_torch_thread, tiny_llama, tiny_qwen2, tiny_token_batches

from .deploy_helpers import GROUP_SIZE, with_adapters

FAMILIES = {"llama": tiny_llama, "qwen2": tiny_qwen2}


@pytest.fixture(scope="session")
def supernet_dirs(tmp_path_factory) -> dict:
    """``{family: folder}``: RTN supernets (bits 2/3/4, group size 32) of tiny random models, with a tokenizer."""
    root = tmp_path_factory.mktemp("deploy_supernets")
    dirs = {}
    for family, build in FAMILIES.items():
        build(seed=0).save_pretrained(root / f"{family}_fp")
        supernet = AutoModelForCausalLM.from_pretrained(
            root / f"{family}_fp",
            quantization_config=QFAQuantizationConfig(group_size=GROUP_SIZE, method="rtn", deploy_dtype="float32"),
        )
        dirs[family] = root / family
        supernet.save_pretrained(dirs[family])
        char_tokenizer().save_pretrained(dirs[family])
    return dirs


@pytest.fixture(scope="session")
def adapter_folder(supernet_dirs, tmp_path_factory):
    """One folder holding the llama supernet and its (nonzero) QFA adapters, as `save_supernet` writes it."""
    folder = tmp_path_factory.mktemp("supernet_with_adapters")
    peft_qfa.save_supernet(with_adapters(supernet_dirs["llama"]), folder)
    char_tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def probe_ids() -> torch.Tensor:
    return tiny_token_batches(2, 12, seed=11)


@pytest.fixture(scope="session")
def search_ids() -> torch.Tensor:
    return tiny_token_batches(2, 24, seed=12)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread (see `peft_qfa.testing.single_torch_thread`)."""
    with single_torch_thread():
        yield
