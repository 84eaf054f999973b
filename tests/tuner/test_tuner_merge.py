"""The merge is exact: merged integer weights compute what supernet + adapter computes, at every bit-width."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model

import peft_qfa
from peft_qfa import QFAConfig, merge_into_quantized, merged_quantized_weights
from peft_qfa.quant import quantize_weight
from peft_qfa.supernet.layer import QFALinear
from peft_qfa.tuner import QFAAdapterLayer

from .tuner_helpers import BITS, GROUP_SIZE, NONZERO_ADAPTER, dequantized_model, load_supernet, relative_error

TOLERANCE = 1e-5  # fp32; the merged and unmerged paths differ only by float rounding


# ---------------------------------------------------------------------------------------------- the rule itself
@pytest.mark.parametrize("bits", BITS)
def test_merge_into_quantized_adds_group_constant_update(bits):
    torch.manual_seed(bits)
    out_features, in_features, rank, scaling = 24, 4 * GROUP_SIZE, 3, 1.5
    qweight = quantize_weight(torch.randn(out_features, in_features), [bits], GROUP_SIZE)[bits]
    lora_A, lora_B = torch.randn(rank, in_features // GROUP_SIZE), torch.randn(out_features, rank)

    merged = merge_into_quantized(qweight, lora_A, lora_B, scaling)

    expected = qweight.dequantize() + scaling * (lora_B @ lora_A).repeat_interleave(GROUP_SIZE, dim=1)
    assert torch.equal(merged.packed, qweight.packed) and torch.equal(merged.scales, qweight.scales)
    assert relative_error(merged.dequantize(), expected) < TOLERANCE
    # the inverse rule takes it out again
    restored = merge_into_quantized(merged, lora_A, lora_B, -scaling)
    assert torch.allclose(restored.zeros, qweight.zeros, atol=1e-4)


def test_merge_into_quantized_rejects_plain_lora_shapes():
    qweight = quantize_weight(torch.randn(8, 64), [4], GROUP_SIZE)[4]
    with pytest.raises(ValueError, match=r"a mergeable adapter needs A: r x 2 \(in_features / group_size\)"):
        merge_into_quantized(qweight, torch.randn(2, 64), torch.randn(8, 2), 1.0)


def test_merge_into_half_precision_zeros_warns_that_it_is_inexact():
    qweight = quantize_weight(torch.randn(8, 64), [4], GROUP_SIZE, dtype=torch.float16)[4]
    with pytest.warns(UserWarning, match="only approximate supernet \\+ adapter"):
        merge_into_quantized(qweight, torch.randn(2, 2), torch.randn(8, 2), 1.0)


def test_layer_output_equals_merged_weight_for_every_bit_width():
    torch.manual_seed(0)
    base = QFALinear(4 * GROUP_SIZE, 16, BITS, GROUP_SIZE, bias=True)
    base.load_quantized(
        quantize_weight(torch.randn(16, 4 * GROUP_SIZE), BITS, GROUP_SIZE), bias=torch.randn(16)
    )
    layer = QFAAdapterLayer(base, "default", r=2, lora_alpha=4, init_weights=False)
    x = torch.randn(5, 4 * GROUP_SIZE)
    corrections = {}
    for bits in BITS:
        base.active_bits = bits
        output = layer(x)
        weight = layer.merged_quantized().dequantize(torch.float32)
        assert relative_error(torch.nn.functional.linear(x, weight, base.bias), output) < TOLERANCE
        corrections[bits] = output - base(x)
    # decoupled: each bit-width has its own adapter, so the corrections differ
    assert not torch.allclose(corrections[2], corrections[3]) and not torch.allclose(
        corrections[3], corrections[4]
    )


# ---------------------------------------------------------------------------------------------- whole models
@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("shared", [False, True], ids=["per-bit", "shared"])
def test_merged_integer_model_matches_supernet_with_adapters(supernet_dirs, input_ids, family, shared):
    model = get_peft_model(
        load_supernet(supernet_dirs[family]),
        QFAConfig(**NONZERO_ADAPTER, shared_adapters=shared),
    ).eval()
    space = peft_qfa.search_space(model)
    subnets = [space.uniform(bits) for bits in BITS] + [space.sample(seed=7)]
    for subnet in subnets:
        peft_qfa.set_subnet(model, subnet)
        with torch.no_grad():
            expected = model(input_ids).logits
            with model.disable_adapter():
                base = model(input_ids).logits
            merged = dequantized_model(supernet_dirs[family], merged_quantized_weights(model, subnet))
            actual = merged(input_ids).logits
        assert relative_error(actual, expected) < TOLERANCE, subnet
        # the adapters are not the identity, so the comparison means something
        assert relative_error(base, expected) > 1e-2


def test_merged_quantized_weights_takes_a_dict_subnet_and_leaves_the_model_alone(supernet_dirs, input_ids):
    model = get_peft_model(load_supernet(supernet_dirs["llama"]), QFAConfig(**NONZERO_ADAPTER)).eval()
    space = peft_qfa.search_space(model)
    peft_qfa.set_subnet(model, space.uniform(4))
    before = {n: p.clone() for n, p in model.named_parameters()}

    as_dict = merged_quantized_weights(model, dict(space.uniform(2)))
    via_method = model.merged_quantized_weights(space.uniform(2))

    assert peft_qfa.get_subnet(model) == space.uniform(4)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert set(as_dict) == {layer.name for layer in space.layers}
    assert all(q.bits == 2 and torch.equal(q.zeros, via_method[n].zeros) for n, q in as_dict.items())


def test_in_place_merge_and_unload_keeps_every_subnet(supernet_dirs, input_ids):
    model = get_peft_model(load_supernet(supernet_dirs["qwen2"]), QFAConfig(**NONZERO_ADAPTER)).eval()
    space = peft_qfa.search_space(model)
    subnets = [space.uniform(bits) for bits in BITS]
    expected = []
    with torch.no_grad():
        for subnet in subnets:
            peft_qfa.set_subnet(model, subnet)
            expected.append(model(input_ids).logits)
        zeros_before = {n: p.clone() for n, p in model.named_parameters() if n.endswith("_zeros")}

        model.merge_adapter()
        after_merge = []
        for subnet in subnets:
            peft_qfa.set_subnet(model, subnet)
            after_merge.append(model(input_ids).logits)
        model.unmerge_adapter()
        zeros_after = {n: p.clone() for n, p in model.named_parameters() if n.endswith("_zeros")}

        unloaded = model.merge_and_unload()
        assert not any(isinstance(m, QFAAdapterLayer) for m in unloaded.modules())
        for subnet, want, merged in zip(subnets, expected, after_merge, strict=True):
            peft_qfa.set_subnet(unloaded, subnet)
            assert relative_error(merged, want) < TOLERANCE
            assert relative_error(unloaded(input_ids).logits, want) < TOLERANCE
    assert all(torch.allclose(zeros_after[n], z, atol=1e-4) for n, z in zeros_before.items())


def test_plain_lora_form_refuses_to_merge(llama_supernet):
    model = get_peft_model(llama_supernet, QFAConfig(r=4, mergeable=False))
    with pytest.raises(
        ValueError, match=r"mergeable=False\) \(plain LoRA.*cannot be folded into integer weights"
    ):
        merged_quantized_weights(model)
    with pytest.raises(ValueError, match="cannot be folded into integer weights"):
        model.merge_and_unload()


def test_excluded_layers_keep_their_stored_weights(llama_supernet):
    model = get_peft_model(llama_supernet, QFAConfig(**NONZERO_ADAPTER, exclude_modules=["down_proj"]))
    wrapped = {name for name, m in model.named_modules() if isinstance(m, QFAAdapterLayer)}
    assert wrapped and not any(name.endswith("down_proj") for name in wrapped)
    subnet = peft_qfa.search_space(model).uniform(3)
    merged = merged_quantized_weights(model, subnet)
    stored = peft_qfa.search_space(model).layers  # every supernet layer, adapted or not
    assert set(merged) == {layer.name for layer in stored}
    for name, qweight in merged.items():
        base = model.get_submodule(f"base_model.model.{name}")
        base = base.get_base_layer() if isinstance(base, QFAAdapterLayer) else base
        assert torch.equal(qweight.zeros, base.quantized(3).zeros) == name.endswith("down_proj")
