"""The Trainer trains adapters on a supernet and refuses to fine-tune the bare (frozen, integer) supernet."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments

import peft_qfa
from peft_qfa import QFAQuantizationConfig


@pytest.fixture
def supernet(llama_dir):
    return AutoModelForCausalLM.from_pretrained(
        llama_dir, quantization_config=QFAQuantizationConfig(method="rtn")
    )


def train_args(tmp_path, steps=2):
    return TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=steps,
        per_device_train_batch_size=2,
        learning_rate=1e-2,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        logging_steps=1,
        disable_tqdm=True,
    )


def lm_dataset(calib_tokens):
    return [{"input_ids": row, "labels": row} for row in calib_tokens[:8]]


def test_quantizer_declares_adapter_training_only(supernet):
    assert supernet.hf_quantizer.is_trainable is True
    assert supernet.hf_quantizer.is_qat_trainable is False


def test_trainer_refuses_full_fine_tuning_of_the_bare_supernet(supernet, tmp_path, calib_tokens):
    with pytest.raises(
        ValueError,
        match="You cannot perform fine-tuning on purely quantized models. Please attach trainable adapters",
    ):
        Trainer(model=supernet, args=train_args(tmp_path), train_dataset=lm_dataset(calib_tokens))
    # nor can the frozen integer weights be unfrozen by hand
    with pytest.raises(RuntimeError, match="floating point"):
        supernet.model.layers[0].self_attn.q_proj.b4_packed.requires_grad_(True)


def test_trainer_trains_adapters_on_the_supernet(supernet, tmp_path, calib_tokens):
    """Stand-in adapter: stock LoRA on the full-precision head (PEFT's LoRA does not wrap QFALinear)."""
    frozen = {n: p.clone() for n, p in supernet.named_parameters() if "_packed" in n or "_scales" in n}
    model = get_peft_model(supernet, LoraConfig(r=4, target_modules=["lm_head"], init_lora_weights=False))
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert lora_before and all("lora_" in n for n in lora_before)
    peft_qfa.set_subnet(model, peft_qfa.search_space(model).uniform(2))
    Trainer(model=model, args=train_args(tmp_path), train_dataset=lm_dataset(calib_tokens)).train()
    trained = dict(model.named_parameters())
    assert any(not torch.equal(trained[n], p) for n, p in lora_before.items())
    for name, param in frozen.items():
        assert torch.equal(trained[f"base_model.model.{name}"], param), name


def test_trainer_trains_qfa_tuner_adapters(llama_dir, tmp_path, calib_tokens):
    """The intended adapters: the QFA tuner's per-bit-width adapters on every QFALinear."""
    supernet = AutoModelForCausalLM.from_pretrained(
        llama_dir, quantization_config=QFAQuantizationConfig(method="rtn", group_size=16)
    )
    frozen = {n: p.clone() for n, p in supernet.named_parameters() if "_packed" in n or "_zeros" in n}
    model = get_peft_model(supernet, peft_qfa.QFAConfig(r=2, target_modules="all-linear"))
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert before and all("qfa_" in n for n in before)
    Trainer(model=model, args=train_args(tmp_path), train_dataset=lm_dataset(calib_tokens)).train()
    after = {n.replace(".base_layer", ""): p for n, p in model.named_parameters()}
    assert any(not torch.equal(dict(model.named_parameters())[n], p) for n, p in before.items())
    for name, param in frozen.items():
        assert torch.equal(after[f"base_model.model.{name}"], param), name
