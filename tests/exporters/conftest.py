"""Fixtures of the export tests: tiny materialized subnets (2, 3 and 4 bits, nonzero merged adapters), saved."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig
from peft_qfa.testing import char_tokenizer, tiny_llama, tiny_qwen2

FAMILIES = {"llama": tiny_llama, "qwen2": tiny_qwen2}
MIXED_BITS = (4, 2, 3)  # one bit-width per decoder block, so every HQQ packing and code range is exercised


def materialized_model(build, folder, seed: int = 0):
    """A 3-block tiny model, quantized (RTN, group 32), nonzero QFA adapters merged, blocks at 4/2/3 bits."""
    build(seed=seed, num_hidden_layers=len(MIXED_BITS)).save_pretrained(folder / "fp")
    supernet = AutoModelForCausalLM.from_pretrained(
        folder / "fp", quantization_config=QFAQuantizationConfig(group_size=32, method="rtn")
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        tuned = get_peft_model(supernet, QFAConfig(r=2, lora_alpha=0.5, init_weights=False)).eval()
    subnet = {f"model.layers.{i}": bits for i, bits in enumerate(MIXED_BITS)}
    return peft_qfa.materialize(tuned, subnet)


@pytest.fixture(scope="session")
def materialized_dirs(tmp_path_factory) -> dict:
    """``{family: folder}`` of saved materialized tiny models, each with a character tokenizer."""
    root = tmp_path_factory.mktemp("export_sources")
    dirs = {}
    for family, build in FAMILIES.items():
        model = materialized_model(build, root / family)
        dirs[family] = root / family / "materialized"
        model.save_pretrained(dirs[family])
        char_tokenizer().save_pretrained(dirs[family])
    return dirs


@pytest.fixture
def materialized(materialized_dirs):
    """A loader: ``materialized("llama")`` is a fresh in-memory copy of the saved model."""

    def load(family: str):
        return AutoModelForCausalLM.from_pretrained(materialized_dirs[family], dtype=torch.float32).eval()

    return load
