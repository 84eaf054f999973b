"""The bfloat16 CPU path of packed layers: torch's int4 kernel computes our grid, and the layer uses it
only where it should (bf16 on the CPU, no gradient to the input, a shape the kernel takes)."""

from __future__ import annotations

import pytest
import torch

import peft_qfa
from peft_qfa import QFAPackedLinear, ops
from peft_qfa.ops import quantized_linear
from peft_qfa.quant import QuantizedWeight
from peft_qfa.quant.cpu_int4 import Int4CpuWeight, cpu_int4_available
from peft_qfa.supernet.layer import find_bit_layers

from .deploy_helpers import logits, relative_error, with_adapters

pytestmark = pytest.mark.skipif(not cpu_int4_available(), reason="this torch has no CPU int4 kernel")

BF16_EPS = 2.0**-8


def random_weight(bits: int, group_size: int, out_features: int = 48, in_features: int = 128, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    groups = in_features // group_size
    codes = torch.randint(0, 2**bits, (out_features, in_features), generator=generator, dtype=torch.uint8)
    scales = torch.rand(out_features, groups, generator=generator) * 0.05 + 0.01
    zeros = torch.rand(out_features, groups, generator=generator) * (
        2**bits - 1
    )  # fractional, as after a merge
    return QuantizedWeight.from_codes(codes, scales, zeros, bits, group_size)


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("group_size", [32, 64])
def test_int4_kernel_computes_our_grid(bits, group_size):
    qweight = random_weight(bits, group_size)
    bias = torch.randn(qweight.out_features)
    x = torch.randn(2, 5, qweight.in_features).to(torch.bfloat16)
    exact = x.double() @ qweight.dequantize(torch.float64).t() + bias.double()
    got = Int4CpuWeight.from_quantized(qweight).linear(x, bias)
    assert got.dtype == torch.bfloat16 and got.shape == (2, 5, qweight.out_features)
    # as close to the exact product as the bf16 reference path (dequantize in bf16, then matmul)
    reference = quantized_linear(x, qweight.to(dtype=torch.bfloat16), bias.to(torch.bfloat16))
    assert relative_error(got.double(), exact) < 4 * BF16_EPS
    assert relative_error(got.double(), exact) < 2 * relative_error(reference.double(), exact) + BF16_EPS


def test_shapes_the_kernel_cannot_take_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="at most 4 bits"):
        Int4CpuWeight.from_quantized(random_weight(8, 32))
    with pytest.raises(ValueError, match="group size in"):
        Int4CpuWeight.from_quantized(random_weight(4, 16))
    with pytest.raises(ValueError, match="divisible by 16"):
        Int4CpuWeight.from_quantized(random_weight(4, 32, out_features=40))
    with pytest.raises(ValueError, match="bfloat16 CPU input"):
        Int4CpuWeight.from_quantized(random_weight(4, 32)).linear(torch.randn(1, 128))


def test_packed_layer_uses_the_kernel_for_bf16_only():
    qweight = random_weight(3, 32)
    layer = QFAPackedLinear.from_quantized(qweight, bias=torch.randn(qweight.out_features))
    x32 = torch.randn(3, qweight.in_features)
    # float32: the exact shared path, no repacked copy
    assert torch.equal(layer(x32), quantized_linear(x32, layer.quantized(), layer.bias))
    assert getattr(layer, "_int4_cache", None) is None and ops.selected_backend(layer, x32) == "torch"
    # bfloat16: the kernel, its copy cached and reused
    bf16 = layer.to(torch.bfloat16)
    x = x32.to(torch.bfloat16)
    got = bf16(x)
    assert ops.selected_backend(bf16, x) == "cpu-int4"
    assert torch.equal(got, Int4CpuWeight.from_quantized(bf16.quantized()).linear(x, bf16.bias))
    cached = bf16._int4_cache[1]
    bf16(x)
    assert bf16._int4_cache[1] is cached
    # an input that needs a gradient takes the autograd path and gets one
    x.requires_grad_(True)
    bf16(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_the_copy_follows_new_weights_and_the_switch_turns_it_off(monkeypatch):
    layer = QFAPackedLinear.from_quantized(random_weight(4, 32)).to(torch.bfloat16)
    x = torch.randn(2, layer.in_features).to(torch.bfloat16)
    before = layer(x)
    other = random_weight(4, 32, seed=1).to(dtype=torch.bfloat16)
    layer.load_state_dict(other.state_dict(prefix="b4_"), strict=False)  # copies new values in place
    after = layer(x)
    assert not torch.equal(before, after)
    assert torch.equal(after, Int4CpuWeight.from_quantized(other).linear(x))
    monkeypatch.setenv("QFA_CPU_INT4", "0")
    ops.refresh_switches()  # the dispatcher reads the environment once
    try:
        fresh = QFAPackedLinear.from_quantized(other.to(dtype=torch.float32)).to(torch.bfloat16)
        assert ops.selected_backend(fresh, x) == "torch"
        assert torch.equal(fresh(x), quantized_linear(x, fresh.quantized(), None))
        assert getattr(fresh, "_int4_cache", None) is None
    finally:
        monkeypatch.delenv("QFA_CPU_INT4")
        ops.refresh_switches()


def test_a_bf16_materialized_model_matches_its_fp32_self(supernet_dirs, probe_ids):
    model = with_adapters(supernet_dirs["qwen2"])
    space = peft_qfa.search_space(model)
    subnet = space.subnet({name: (2, 3, 4)[i % 3] for i, name in enumerate(space.group_names)})
    packed = peft_qfa.materialize(model, subnet)
    expected = logits(packed, probe_ids)
    bf16 = packed.to(torch.bfloat16)
    got = logits(bf16, probe_ids).float()
    layers = find_bit_layers(bf16).values()
    used = [layer for layer in layers if getattr(layer, "_int4_cache", (None, None))[1] is not None]
    assert used, "no layer of the tiny model took the int4 path"
    assert relative_error(got, expected) < 0.05  # bf16 activations through a few layers
