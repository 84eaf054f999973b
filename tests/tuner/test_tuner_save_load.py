"""Saving and loading adapters: PeftModel, AutoPeftModel, transformers' load_adapter, named adapters."""

from __future__ import annotations

import json

import pytest
import torch
from peft import AutoPeftModelForCausalLM, PeftModel, get_peft_model
from safetensors.torch import load_file

import peft_qfa
from peft_qfa import QFAConfig
from peft_qfa.tuner import QFAAdapterLayer

from .tuner_helpers import BITS, GROUP_SIZE, NONZERO_ADAPTER, load_supernet


@pytest.fixture
def saved_adapter(supernet_dirs, tmp_path, input_ids):
    """A nonzero adapter saved from the llama supernet, plus the model that saved it."""
    model = get_peft_model(load_supernet(supernet_dirs["llama"]), QFAConfig(**NONZERO_ADAPTER)).eval()
    model.save_pretrained(tmp_path / "adapter")
    return tmp_path / "adapter", model


def _logits(model, input_ids, subnet):
    peft_qfa.set_subnet(model, dict(subnet))
    with torch.no_grad():
        return model(input_ids).logits


def test_saved_files_carry_the_supernet_grid_and_qfa_keys(saved_adapter):
    folder, _ = saved_adapter
    config = json.loads((folder / "adapter_config.json").read_text())
    assert (
        config["peft_type"] == "QFA" and config["bits"] == list(BITS) and config["group_size"] == GROUP_SIZE
    )
    keys = list(load_file(folder / "adapter_model.safetensors"))
    assert keys and all(".qfa_A." in k or ".qfa_B." in k for k in keys)
    assert {k.rsplit(".", 1)[-1] for k in keys} == {f"b{b}" for b in BITS}
    assert not any(".default" in k for k in keys)  # loadable under any adapter name


def test_peft_model_from_pretrained_round_trips_random_subnets(saved_adapter, supernet_dirs, input_ids):
    folder, original = saved_adapter
    loaded = PeftModel.from_pretrained(load_supernet(supernet_dirs["llama"]), folder).eval()
    space = peft_qfa.search_space(loaded)
    for seed in range(3):
        subnet = space.sample(seed=seed)
        assert torch.equal(_logits(loaded, input_ids, subnet), _logits(original, input_ids, subnet))


def test_auto_peft_model_loads_base_supernet_and_adapter(saved_adapter, input_ids):
    folder, original = saved_adapter
    loaded = AutoPeftModelForCausalLM.from_pretrained(folder).eval()
    subnet = peft_qfa.search_space(loaded).sample(seed=5)
    assert torch.equal(_logits(loaded, input_ids, subnet), _logits(original, input_ids, subnet))


def test_transformers_load_adapter(saved_adapter, supernet_dirs, input_ids):
    folder, original = saved_adapter
    model = load_supernet(supernet_dirs["llama"])
    model.load_adapter(str(folder))
    assert any(isinstance(m, QFAAdapterLayer) for m in model.modules())
    subnet = peft_qfa.search_space(model).sample(seed=6)
    assert torch.equal(_logits(model.eval(), input_ids, subnet), _logits(original, input_ids, subnet))
    merged = peft_qfa.merged_quantized_weights(model, subnet)
    expected = original.merged_quantized_weights(subnet)
    assert all(torch.equal(q.zeros, expected[name].zeros) for name, q in merged.items())


def test_named_adapters_switch_and_disable(supernet_dirs, tmp_path, input_ids):
    model = get_peft_model(load_supernet(supernet_dirs["llama"]), QFAConfig(**NONZERO_ADAPTER)).eval()
    torch.manual_seed(1)
    model.add_adapter("other", QFAConfig(**NONZERO_ADAPTER))
    subnet = peft_qfa.search_space(model).uniform(3)
    with torch.no_grad(), model.disable_adapter():
        base = _logits(model, input_ids, subnet)
    first = _logits(model, input_ids, subnet)
    model.set_adapter("other")
    second = _logits(model, input_ids, subnet)
    assert not torch.allclose(first, second) and not torch.allclose(first, base)
    with model.disable_adapter():
        assert torch.equal(_logits(model, input_ids, subnet), base)
    bare = load_supernet(supernet_dirs["llama"])
    assert torch.equal(_logits(bare, input_ids, subnet), base)  # disabled == the base supernet

    # both adapters save and load back under their names
    model.save_pretrained(tmp_path / "both")
    loaded = PeftModel.from_pretrained(load_supernet(supernet_dirs["llama"]), tmp_path / "both").eval()
    loaded.load_adapter(tmp_path / "both" / "other", adapter_name="other")
    loaded.set_adapter("other")
    assert torch.equal(_logits(loaded, input_ids, subnet), second)

    loaded.delete_adapter("other")
    assert not any(".other." in name for name, _ in loaded.named_parameters())


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("llama_g64", r"bits=\(2, 3, 4\) and group_size=32.*holds bits=\(2, 3, 4\) with group_size=64"),
        ("llama_bits24", r"bits=\(2, 3, 4\) and group_size=32.*holds bits=\(2, 4\) with group_size=32"),
    ],
)
def test_loading_onto_another_supernet_grid_fails(saved_adapter, supernet_dirs, key, message):
    folder, _ = saved_adapter
    other = load_supernet(supernet_dirs[key])
    with pytest.raises(ValueError, match=message):
        PeftModel.from_pretrained(other, folder)
    with pytest.raises(ValueError, match="Load it onto a supernet built with QFAQuantizationConfig"):
        load_supernet(supernet_dirs[key]).load_adapter(str(folder))
    assert not any(isinstance(m, QFAAdapterLayer) for m in other.modules())  # refused before any change
