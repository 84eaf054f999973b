"""Tiny models (saved to disk, with a tiny tokenizer) and calibration data for the supernet tests."""

from __future__ import annotations

import pytest
import torch

from peft_qfa.testing import char_tokenizer, tiny_llama, tiny_qwen2, tiny_token_batches

VOCAB_SIZE = 256
SEQ_LEN = 32

MODEL_BUILDERS = {"llama": tiny_llama, "qwen2": tiny_qwen2}


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    """``{arch: folder}``: each tiny model saved with the tiny tokenizer beside it."""
    dirs = {}
    for arch, build in MODEL_BUILDERS.items():
        folder = tmp_path_factory.mktemp(f"tiny_{arch}")
        build(0).save_pretrained(folder)
        char_tokenizer().save_pretrained(folder)
        dirs[arch] = str(folder)
    return dirs


@pytest.fixture(scope="session")
def llama_dir(model_dirs) -> str:
    return model_dirs["llama"]


@pytest.fixture(scope="session")
def calib_tokens() -> torch.Tensor:
    return tiny_token_batches(16, SEQ_LEN, VOCAB_SIZE, seed=1)


@pytest.fixture(scope="session")
def probe_ids() -> torch.Tensor:
    return tiny_token_batches(2, 24, VOCAB_SIZE, seed=2)
