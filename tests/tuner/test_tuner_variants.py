"""The variants that learn the quantizer (PEQA, L4Q, LR-QAT) next to QA-LoRA, in both settings.

Every variant is checked the same way: trained a few steps, then materialized at a subnet, the packed
model must compute what the trained model computed there (relative error < 1e-5; for L4Q and LR-QAT the
trained model's forward *is* the fake-quantized one, so the deployed re-rounded codes are compared with it).
"""

from __future__ import annotations

import pytest
import torch
from datasets import Dataset
from peft import PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator

import peft_qfa
from peft_qfa import QFAConfig, QFASamplerCallback
from peft_qfa.deploy.model_card import render_materialized_card, render_supernet_card
from peft_qfa.search import search_subnet
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.supernet.packed_layer import QFAPackedLinear
from peft_qfa.testing import tiny_token_batches
from peft_qfa.train.recipe import resolve_options
from peft_qfa.tuner import VARIANTS, get_variant, trainable_parameters

from .tuner_helpers import VOCAB, adapter_params, load_supernet, relative_error

ALL = sorted(VARIANTS)
# (supernet fixture key, the bit-widths trained and materialized): the supernet, and a per-bit baseline;
# L4Q's per-bit supernet carries the 8-bit copy it re-quantizes from.
SETTINGS = {
    "supernet": lambda variant: ("llama", (2, 3, 4)),
    "single": lambda variant: ("llama_bits28", (2,)) if variant == "l4q" else ("llama_bits3", (3,)),
}
ADAPTER = {"r": 2, "lora_alpha": 0.5, "init_weights": False}


def variant_model(supernet_dirs, variant: str, setting: str = "supernet"):
    key, bits = SETTINGS[setting](variant)
    torch.manual_seed(0)
    model = get_peft_model(load_supernet(supernet_dirs[key]), QFAConfig(variant=variant, **ADAPTER))
    return model, bits


def train_steps(model, ids, bits_list, steps: int = 2) -> None:
    """A few SGD steps per bit-width, so every trained parameter has moved away from its initialisation."""
    space = peft_qfa.search_space(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for bits in bits_list:
        peft_qfa.set_subnet(model, space.uniform(bits))
        for _ in range(steps):
            optimizer.zero_grad()
            model(ids, labels=ids).loss.backward()
            optimizer.step()
    model.eval()


@pytest.mark.parametrize("setting", sorted(SETTINGS))
@pytest.mark.parametrize("variant", ALL)
def test_materialized_subnet_computes_what_the_trained_model_computed(supernet_dirs, input_ids, variant, setting):
    model, bits_list = variant_model(supernet_dirs, variant, setting)
    train_steps(model, input_ids, bits_list)
    space = peft_qfa.search_space(model)
    subnets = [space.uniform(b) for b in bits_list]
    if len(bits_list) > 1:  # a mixed subnet too: every layer deploys its own bit-width
        subnets.append(space.subnet({g: bits_list[i % len(bits_list)] for i, g in enumerate(space.group_names)}))
    for subnet in subnets:
        peft_qfa.set_subnet(model, subnet)
        with torch.no_grad():
            expected = model(input_ids).logits
        deployed = peft_qfa.materialize(model, subnet, deploy_dtype="float32")  # exact files
        assert all(isinstance(m, QFAPackedLinear) for m in find_bit_layers(deployed).values())
        with torch.no_grad():
            actual = deployed(input_ids).logits
        assert relative_error(actual, expected) < 1e-5, (variant, dict(subnet))


@pytest.mark.parametrize("variant", ALL)
def test_only_the_active_bit_widths_parameters_get_a_gradient(supernet_dirs, input_ids, variant):
    model, _ = variant_model(supernet_dirs, variant)
    peft_qfa.set_subnet(model, peft_qfa.search_space(model).uniform(3))
    model.train()
    model(input_ids, labels=input_ids).loss.backward()
    params = adapter_params(model)
    with_grad = {name for name, p in params.items() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all(name.endswith(".b3") for name in with_grad)
    assert {name for name in params if name.endswith(".b3")} == with_grad
    assert not any(p.grad is not None for n, p in model.named_parameters() if ".qfa_" not in n)


@pytest.mark.parametrize("variant", ALL)
def test_trained_quantizer_saves_and_reloads_bit_identically(supernet_dirs, input_ids, variant, tmp_path):
    model, bits_list = variant_model(supernet_dirs, variant)
    frozen_before = {n: t.clone() for n, t in load_supernet(supernet_dirs["llama"]).state_dict().items()}
    train_steps(model, input_ids, bits_list, steps=1)
    base_state = {n.replace("base_model.model.", "").replace(".base_layer", ""): t for n, t in model.state_dict().items()
                  if ".qfa_" not in n}
    assert all(torch.equal(base_state[n], t) for n, t in frozen_before.items())  # the supernet stays untouched
    model.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(load_supernet(supernet_dirs["llama"]), tmp_path / "adapter").eval()
    assert reloaded.peft_config["default"].variant == variant
    saved, loaded = adapter_params(model), adapter_params(reloaded)
    assert saved.keys() == loaded.keys() and all(torch.equal(saved[n], loaded[n]) for n in saved)
    subnet = peft_qfa.search_space(model).uniform(2)
    for m in (model, reloaded):
        peft_qfa.set_subnet(m, subnet)
    with torch.no_grad():
        assert torch.equal(model(input_ids).logits, reloaded(input_ids).logits)


def test_trainable_parameters_follow_each_variant(supernet_dirs):
    layer = find_bit_layers(load_supernet(supernet_dirs["llama"]))["model.layers.0.self_attn.q_proj"]
    n_in, n_out, g = layer.in_features, layer.out_features, layer.group_size
    for variant in ALL:
        model, _ = variant_model(supernet_dirs, variant)
        wrapper = model.base_model.model.model.layers[0].self_attn.q_proj
        counted = sum(p.numel() for n, p in wrapper.named_parameters() if n.startswith("qfa_") and n.endswith(".b3"))
        assert counted == get_variant(variant).trainable_parameters(n_in, n_out, g, ADAPTER["r"]), variant


@pytest.mark.parametrize("variant", ALL)
def test_a_variant_supernet_trains_with_the_sampler_callback_and_is_searchable(supernet_dirs, variant, tmp_path):
    model, _ = variant_model(supernet_dirs, variant)
    ids = tiny_token_batches(4, 16, VOCAB, seed=5)
    dataset = Dataset.from_dict({"input_ids": ids.tolist(), "labels": ids.tolist()})
    callback = QFASamplerCallback(schedule="sandwich", seed=0)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=2, learning_rate=1e-3,
                             save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True)
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator,
            callbacks=[callback]).train()
    assert sum(n for counts in callback.bit_counts.values() for n in counts.values()) > 0
    model.eval()
    result = search_subnet(model, 3.0, ids.flatten(), strategy="two-stage", n_random=3, n_refine=1, seq_len=16)
    assert result.subnet.avg_bits <= 3.0 + 1e-6
    deployed = peft_qfa.materialize(model, result.subnet, deploy_dtype="float32")
    peft_qfa.set_subnet(model, result.subnet)
    with torch.no_grad():
        assert relative_error(deployed(ids).logits, model(ids).logits) < 1e-5


# ---------------------------------------------------------------------------------------------- bad input


def test_l4q_without_a_higher_precision_copy_is_refused(supernet_dirs):
    with pytest.raises(ValueError, match=r"variant='l4q'\) needs a higher-precision copy.*bits=\(3, 8\)"):
        get_peft_model(load_supernet(supernet_dirs["llama_bits3"]), QFAConfig(variant="l4q"))


def test_lr_qat_refuses_a_grid_its_int8_buffer_cannot_hold(supernet_dirs):
    with pytest.raises(ValueError, match=r"variant='lr-qat'\) stores the integer weight as an int8 fixed-point"):
        get_peft_model(load_supernet(supernet_dirs["llama_bits28"]), QFAConfig(variant="lr-qat"))


def test_peqa_refuses_qa_loras_shared_adapters():
    with pytest.raises(ValueError, match=r"`shared_adapters=True` is a QA-LoRA setting; `variant='peqa'`"):
        QFAConfig(variant="peqa", shared_adapters=True)


def test_qa_lora_rank_above_the_group_count_is_refused(supernet_dirs):
    with pytest.raises(ValueError, match="the mergeable \\(QA-LoRA\\) adapter's A has only"):
        get_peft_model(load_supernet(supernet_dirs["llama"]), QFAConfig(variant="qa-lora", r=64))


def test_unknown_variant_and_in_place_merge_are_refused(supernet_dirs):
    with pytest.raises(ValueError, match="unknown `variant='dora'`; choose one of"):
        QFAConfig(variant="dora")
    model, _ = variant_model(supernet_dirs, "lr-qat")
    with pytest.raises(NotImplementedError, match="cannot be merged in place; use `peft_qfa.materialize"):
        model.merge_and_unload()


def test_train_flags_refuse_an_l4q_run_without_its_copy():
    base = {"model": "m", "data": ["d.txt"], "output": "o"}
    assert resolve_options({**base, "variant": "l4q", "bits": "2,8"})["variant"] == "l4q"
    with pytest.raises(ValueError, match="--variant l4q needs a higher-precision copy.*--bits 2,8"):
        resolve_options({**base, "variant": "l4q", "bits": "2"})
    with pytest.raises(ValueError, match="--variant lr-qat keeps its integer weights in int8"):
        resolve_options({**base, "variant": "lr-qat", "bits": "2,8"})


@pytest.mark.parametrize("variant", ALL)
def test_cost_model_and_model_cards_know_the_variant(supernet_dirs, variant):
    model, _ = variant_model(supernet_dirs, variant)
    space = peft_qfa.search_space(model)
    subnet = space.subnet({g: (2, 4)[i % 2] for i, g in enumerate(space.group_names)})
    packed = peft_qfa.materialize(model, subnet)
    tensors = [*packed.parameters(), *packed.buffers()]
    stored = {t.untyped_storage().data_ptr(): t.numel() * t.element_size() for t in tensors}
    assert space.cost(subnet).bytes == sum(stored.values())  # the deployed bytes are the cost model's
    card = render_materialized_card(packed, "me/packed")
    assert get_variant(variant).deploy_note in card
    expected = trainable_parameters(model, "default")
    assert f"variant={variant}" in render_supernet_card(model, "me/supernet")
    assert f"{expected:,} trainable parameters per bit-width" in render_supernet_card(model, "me/supernet")
    assert expected == sum(p.numel() for n, p in adapter_params(model).items() if n.endswith(".b2"))


@pytest.mark.parametrize("variant", ["l4q", "lr-qat"])
def test_a_materialized_re_rounded_model_saves_and_reloads(supernet_dirs, input_ids, variant, tmp_path):
    model, bits_list = variant_model(supernet_dirs, variant)
    train_steps(model, input_ids, bits_list[:1], steps=1)
    packed = peft_qfa.materialize(model, peft_qfa.search_space(model).uniform(2))
    packed.save_pretrained(tmp_path / "packed")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed").eval()
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids).logits, packed(input_ids).logits)
