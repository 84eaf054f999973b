"""Materialization is exact, self-contained and round-trips through save_pretrained / from_pretrained."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFAPackedLinear
from peft_qfa.supernet.layer import QFALinear, find_bit_layers
from peft_qfa.tuner import QFAAdapterLayer

from .deploy_helpers import greedy, logits, relative_error, with_adapters

TOLERANCE = 1e-5  # fp32: merged and unmerged paths differ only by float rounding


def mixed_subnet(model):
    space = peft_qfa.search_space(model)
    return space.subnet({name: (2, 4)[i % 2] for i, name in enumerate(space.group_names)})


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_materialized_output_equals_supernet_with_adapters(supernet_dirs, probe_ids, family):
    model = with_adapters(supernet_dirs[family])
    space = peft_qfa.search_space(model)
    for subnet in (mixed_subnet(model), space.uniform(3)):
        with peft_qfa.use_subnet(model, subnet):
            expected = logits(model, probe_ids)
        bare = AutoModelForCausalLM.from_pretrained(supernet_dirs[family])
        with peft_qfa.use_subnet(bare, subnet):
            without_adapters = logits(bare, probe_ids)
        packed = peft_qfa.materialize(model, subnet)
        got = logits(packed, probe_ids)
        assert relative_error(got, expected) < TOLERANCE
        assert (
            relative_error(got, without_adapters) > 100 * TOLERANCE
        )  # the adapters were merged, not dropped


def test_materialized_model_is_self_contained(supernet_dirs, probe_ids):
    model = with_adapters(supernet_dirs["qwen2"])
    subnet = mixed_subnet(model)
    with peft_qfa.use_subnet(model, subnet):
        before = logits(model, probe_ids)
    packed = peft_qfa.materialize(model, subnet)
    layers = find_bit_layers(packed)
    assert layers and all(type(layer) is QFAPackedLinear for layer in layers.values())
    assert not any(isinstance(m, QFAAdapterLayer) for m in packed.modules())
    assert not any(".qfa_" in name for name, _ in packed.named_parameters())
    for name, layer in layers.items():
        bits = subnet.layer_bits()[name]
        assert layer.candidate_bits == (bits,)
        expected = {f"b{bits}_packed", f"b{bits}_scales", f"b{bits}_zeros"} | (
            {"bias"} if layer.bias is not None else set()
        )
        assert {n for n, _ in layer.named_parameters()} == expected
    # the subnet API reads the fixed bits back, and only these bits can be active
    assert dict(peft_qfa.get_subnet(packed)) == dict(subnet)
    assert [g.bits for g in peft_qfa.search_space(packed).groups] == [(b,) for b in subnet.values()]
    with pytest.raises(ValueError, match=r"cannot run at 3 bits; its candidates are \((2|4),\)"):
        peft_qfa.set_subnet(packed, {name: 3 for name in subnet})
    # shares nothing with the supernet, which is unchanged and still a supernet
    supernet_storages = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
    assert not supernet_storages & {t.untyped_storage().data_ptr() for t in packed.state_dict().values()}
    assert all(
        isinstance(m.get_base_layer(), QFALinear) and m.get_base_layer().candidate_bits == (2, 3, 4)
        for m in model.modules()
        if isinstance(m, QFAAdapterLayer)
    )
    with peft_qfa.use_subnet(model, subnet):
        assert torch.equal(logits(model, probe_ids), before)


def test_cost_model_bytes_are_the_materialized_bytes(supernet_dirs):
    model = with_adapters(supernet_dirs["qwen2"])
    subnet = mixed_subnet(model)
    packed = peft_qfa.materialize(model, subnet)
    seen, total = set(), 0
    for tensor in [*packed.parameters(), *packed.buffers()]:
        if tensor.untyped_storage().data_ptr() not in seen:
            seen.add(tensor.untyped_storage().data_ptr())
            total += tensor.numel() * tensor.element_size()
    assert peft_qfa.search_space(model).cost(subnet).bytes == total
    assert peft_qfa.search_space(packed).cost(peft_qfa.get_subnet(packed)).bytes == total


def test_save_and_load_give_identical_generations(supernet_dirs, probe_ids, tmp_path):
    model = with_adapters(supernet_dirs["llama"])
    packed = peft_qfa.materialize(model, mixed_subnet(model))
    packed.save_pretrained(tmp_path / "packed")
    saved = json.loads((tmp_path / "packed" / "config.json").read_text())["quantization_config"]
    assert saved["layer_bits"] == mixed_subnet(model).layer_bits()
    assert saved["bits"] == [2, 4] and "budget" not in saved
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert all(type(layer) is QFAPackedLinear for layer in find_bit_layers(reloaded).values())
    assert peft_qfa.get_subnet(reloaded) == peft_qfa.get_subnet(packed)
    assert torch.equal(logits(reloaded, probe_ids), logits(packed, probe_ids))
    first = greedy(packed, probe_ids[:1, :5])
    assert torch.equal(greedy(reloaded, probe_ids[:1, :5]), first)
    assert first.shape[1] == 5 + 12


def test_materialize_defaults_to_the_active_subnet_and_refuses_twice(supernet_dirs):
    model = with_adapters(supernet_dirs["llama"])
    subnet = mixed_subnet(model)
    peft_qfa.set_subnet(model, subnet)
    packed = peft_qfa.materialize(model)
    assert dict(peft_qfa.get_subnet(packed)) == dict(subnet)
    with pytest.raises(ValueError, match="already a materialized subnet"):
        peft_qfa.materialize(packed)
    with pytest.raises(ValueError, match="is not a QFA supernet"):
        peft_qfa.materialize(torch.nn.Linear(2, 2))
