"""A short real fine-tuning run: QFA adapters lower the held-out loss of a fixed 3-bit SmolLM2 subnet."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa
from peft_qfa import QFAConfig, QFAQuantizationConfig
from peft_qfa.testing import austen_texts, smollm2_path

STEPS = 30
SEQ_LEN = 128
BATCH = 4
HELDOUT_WINDOWS = 16


def _windows(tokenizer, text: str, n: int) -> torch.Tensor:
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"][: n * SEQ_LEN]
    return torch.tensor(ids).view(n, SEQ_LEN)


@torch.no_grad()
def _mean_loss(model, windows: torch.Tensor) -> float:
    model.eval()
    losses = [model(input_ids=batch, labels=batch).loss.item() for batch in windows.split(BATCH)]
    return sum(losses) / len(losses)


@pytest.mark.slow
def test_thirty_steps_lower_the_heldout_loss_of_the_3bit_subnet():
    folder = smollm2_path()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    supernet = AutoModelForCausalLM.from_pretrained(
        folder, quantization_config=QFAQuantizationConfig(bits=(2, 3, 4), group_size=64, method="rtn")
    )
    # SmolLM2's hidden size 576 holds 9 groups of 64, the largest rank a mergeable adapter can have there.
    model = get_peft_model(supernet, QFAConfig(r=8, lora_alpha=16))
    space = peft_qfa.search_space(model)
    peft_qfa.set_subnet(model, space.uniform(3))

    novels, persuasion = austen_texts()
    train = _windows(tokenizer, novels[0], STEPS * BATCH)  # the start of Emma
    heldout = _windows(tokenizer, persuasion, HELDOUT_WINDOWS)
    before = _mean_loss(model, heldout)

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    model.train()
    for batch in train.split(BATCH):
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    after = _mean_loss(model, heldout)

    print(f"held-out loss of the all-3-bit subnet: {before:.4f} -> {after:.4f}")
    assert peft_qfa.get_subnet(model) == space.uniform(3)
    assert after < before * 0.99, (before, after)
