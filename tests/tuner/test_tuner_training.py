"""Training: only the active bit-width's adapters learn; every adapter form trains."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

import peft_qfa
from peft_qfa import QFAConfig
from peft_qfa.testing import tiny_token_batches
from peft_qfa.tuner import QFAAdapterLayer

from .tuner_helpers import VOCAB, adapter_params


def _bits_of(name: str) -> int | None:
    """The bit-width a per-bit adapter parameter belongs to (``...qfa_A.default.b3`` -> 3)."""
    last = name.rsplit(".", 1)[-1]
    return int(last[1:]) if last.startswith("b") else None


def _layer_of(name: str) -> str:
    return name.removeprefix("base_model.model.").split(".qfa_")[0]


def test_one_step_changes_only_the_active_subnets_adapters(llama_supernet):
    model = get_peft_model(llama_supernet, QFAConfig(r=2, init_weights=False))
    space = peft_qfa.search_space(model)
    subnet = space.subnet({space.group_names[0]: 2, space.group_names[1]: 4})
    peft_qfa.set_subnet(model, subnet)
    active = subnet.layer_bits()
    before = {name: p.detach().clone() for name, p in adapter_params(model).items()}
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1
    )
    batch = tiny_token_batches(2, 16, VOCAB, seed=0)

    model.train()
    model(input_ids=batch, labels=batch).loss.backward()
    optimizer.step()

    params = adapter_params(model)
    assert params and all(p.requires_grad for p in params.values())  # every bit-width is trainable ...
    for name, p in params.items():
        is_active = _bits_of(name) == active[_layer_of(name)]
        changed = not torch.equal(p.detach(), before[name])
        assert changed == is_active, name  # ... but only the sampled one moves (weight decay included)
        assert (p.grad is not None) == is_active, name
        if not is_active:
            assert p not in optimizer.state or not optimizer.state[p], name  # no moments either
    # the frozen integer weights stay frozen
    assert not any(p.requires_grad for n, p in model.named_parameters() if ".qfa_" not in n)


@pytest.mark.parametrize(
    "settings",
    [{}, {"mergeable": False}, {"shared_adapters": True}],
    ids=["qa-lora", "plain-lora", "shared"],
)
def test_every_adapter_form_lowers_the_loss(llama_supernet, settings):
    model = get_peft_model(llama_supernet, QFAConfig(r=2, lora_alpha=4, **settings))
    space = peft_qfa.search_space(model)
    peft_qfa.set_subnet(model, space.uniform(3))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-2)
    batch = tiny_token_batches(4, 32, VOCAB, seed=1)
    model.train()
    losses = []
    for _ in range(8):
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.05, losses


def test_shared_adapter_is_one_set_used_by_every_bit_width(llama_supernet):
    model = get_peft_model(llama_supernet, QFAConfig(r=2, shared_adapters=True, init_weights=False))
    layer = next(m for m in model.modules() if isinstance(m, QFAAdapterLayer))
    assert list(layer.qfa_A["default"].keys()) == ["shared"]
    A2, _ = layer.adapter_factors("default", 2)
    A4, _ = layer.adapter_factors("default", 4)
    assert A2 is A4


def test_dropout_only_acts_in_training_mode(llama_supernet, input_ids):
    model = get_peft_model(llama_supernet, QFAConfig(r=2, lora_dropout=0.5, init_weights=False))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_ids).logits, model(input_ids).logits)
        model.train()
        assert not torch.equal(model(input_ids).logits, model(input_ids).logits)


def test_trainer_accepts_a_qfa_peft_supernet(llama_supernet, tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    model = get_peft_model(llama_supernet, QFAConfig(r=2))
    peft_qfa.set_subnet(model, peft_qfa.search_space(model).uniform(2))
    ids = tiny_token_batches(8, 16, VOCAB, seed=2).tolist()
    dataset = Dataset.from_dict({"input_ids": ids, "labels": ids})
    args = TrainingArguments(
        output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=4, report_to=[], use_cpu=True
    )
    before = {n: p.detach().clone() for n, p in adapter_params(model).items()}
    Trainer(model=model, args=args, train_dataset=dataset).train()
    changed = {n for n, p in adapter_params(model).items() if not torch.equal(p.detach(), before[n])}
    assert changed and all(n.endswith(".b2") for n in changed)
