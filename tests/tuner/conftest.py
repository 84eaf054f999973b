"""Fixtures of the tuner tests: tiny supernets saved to disk, so PEFT and transformers can reload them by path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from peft_qfa import QFAQuantizationConfig
from peft_qfa.testing import single_torch_thread, tiny_llama, tiny_qwen2, tiny_token_batches

from .tuner_helpers import BITS, GROUP_SIZE, VOCAB, load_supernet

_FAMILIES = {"llama": tiny_llama, "qwen2": tiny_qwen2}
# (family, bits, group_size) of every supernet the tests load; the last two differ from the default on purpose.
_SUPERNETS = {
    "llama": ("llama", BITS, GROUP_SIZE),
    "qwen2": ("qwen2", BITS, GROUP_SIZE),
    "llama_g64": ("llama", BITS, 64),
    "llama_bits24": ("llama", (2, 4), GROUP_SIZE),
    "llama_bits3": ("llama", (3,), GROUP_SIZE),  # a per-bit baseline's supernet
    "llama_bits28": ("llama", (2, 8), GROUP_SIZE),  # 2 bits plus the 8-bit copy L4Q re-quantizes from
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Run each tuner test on one intra-op thread (see `peft_qfa.testing.single_torch_thread`)."""
    with single_torch_thread():
        yield


@pytest.fixture(scope="session")
def supernet_dirs(tmp_path_factory) -> dict[str, Path]:
    """``{key: folder}`` of saved RTN supernets built through ``from_pretrained(quantization_config=...)``."""
    root = tmp_path_factory.mktemp("tuner_supernets")
    dirs = {}
    for key, (family, bits, group_size) in _SUPERNETS.items():
        fp_dir = root / f"{family}_fp"
        if not fp_dir.exists():
            _FAMILIES[family](seed=0).save_pretrained(fp_dir)
        supernet = AutoModelForCausalLM.from_pretrained(
            fp_dir, quantization_config=QFAQuantizationConfig(bits=bits, group_size=group_size, method="rtn")
        )
        dirs[key] = root / key
        supernet.save_pretrained(dirs[key])
    return dirs


@pytest.fixture
def llama_supernet(supernet_dirs):
    return load_supernet(supernet_dirs["llama"])


@pytest.fixture(scope="session")
def input_ids() -> torch.Tensor:
    return tiny_token_batches(2, 16, VOCAB, seed=3)
