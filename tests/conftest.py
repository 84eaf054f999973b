"""Suite-wide set-up: an offline, CPU-friendly environment, the `gpu` skip, and the tiny-model fixtures.

Markers (registered in pyproject.toml): `slow` tests use the real SmolLM2-135M or real data and are
selected with `-m slow` (the default `make test` runs `-m "not slow and not gpu"`); `gpu` tests are
skipped with a reason when CUDA is absent.
"""

import os

# Before anything below (or any test module) imports transformers, peft or triton.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402  (importing torch does not import triton)

CUDA = torch.cuda.is_available()
if not CUDA:
    # Triton kernels run through the interpreter on the CPU; the variable is read when triton is imported.
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Under pytest-xdist every worker would otherwise start as many torch threads as there are cores.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // _workers))

from peft_qfa.testing import tiny_llama, tiny_qwen2  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture
def tiny_llama_model():
    """A fresh 2-layer `LlamaForCausalLM` (seed 0); tests may modify it."""
    return tiny_llama(seed=0)


@pytest.fixture
def tiny_qwen2_model():
    """A fresh 2-layer `Qwen2ForCausalLM` (seed 0); tests may modify it."""
    return tiny_qwen2(seed=0)
