"""Min-max grid, RTN, GPTQ and the QuantizedWeight container on synthetic tensors."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from peft_qfa.quant import (
    SUPPORTED_BITS,
    HessianAccumulator,
    QuantizedWeight,
    gptq_quantize,
    quantize_rtn,
    quantize_weight,
)
from peft_qfa.quant.grid import dequantize


@settings(max_examples=60, deadline=None)
@given(
    bits=st.sampled_from(SUPPORTED_BITS),
    rows=st.integers(1, 9),
    n_groups=st.integers(1, 7),
    group_size=st.sampled_from([2, 5, 32, 64]),
    scale=st.floats(1e-3, 1e2),
    seed=st.integers(0, 2**16),
)
def test_rtn_error_within_half_step(bits, rows, n_groups, group_size, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, n_groups * group_size, generator=gen) * scale
    codes, scales, zeros = quantize_rtn(weight, bits, group_size)
    assert codes.dtype == torch.uint8 and int(codes.max()) < 2**bits
    error = (dequantize(codes, scales, zeros, group_size) - weight).abs()
    half_step = scales.repeat_interleave(group_size, dim=1) / 2
    # fp32 slack: a few ulps of the group's magnitude
    slack = 4 * torch.finfo(torch.float32).eps * weight.abs().amax(dim=1, keepdim=True)
    assert bool((error <= half_step + slack).all())


def test_grid_hits_group_min_and_max_exactly():
    weight = torch.tensor([[-1.0, 0.25, 0.5, 3.0]])
    codes, scales, zeros = quantize_rtn(weight, 2, 4)
    assert codes.tolist() == [[0, 1, 1, 3]]
    restored = dequantize(codes, scales, zeros, 4)
    assert restored[0, 0].item() == pytest.approx(-1.0) and restored[0, 3].item() == pytest.approx(3.0)
    assert zeros.item() != round(zeros.item())  # zero points stay fractional


def test_constant_group_is_exact():
    weight = torch.full((2, 32), 0.125)
    codes, scales, zeros = quantize_rtn(weight, 3, 32)
    assert torch.allclose(dequantize(codes, scales, zeros, 32), weight)


def _layer_with_inputs(seed=0, out_features=48, in_features=128, tokens=1024):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(out_features, in_features, generator=gen)
    mixing = torch.randn(in_features, in_features, generator=gen) / math.sqrt(in_features)
    inputs = torch.randn(tokens, in_features, generator=gen) @ mixing  # correlated features
    acc = HessianAccumulator(in_features, "toy")
    for chunk in inputs.split(100):
        acc.add(chunk)
    return weight, inputs, acc.hessian()


def test_hessian_accumulator_matches_definition():
    _, inputs, hessian = _layer_with_inputs(tokens=300)
    assert torch.allclose(hessian, 2 * inputs.T @ inputs / 300, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_rtn_on_output_error_for_every_bitwidth(act_order):
    weight, inputs, hessian = _layer_with_inputs()
    results = gptq_quantize(weight, hessian, (2, 3, 4), 32, act_order=act_order)
    assert sorted(results) == [2, 3, 4]
    for bits, (codes, scales, zeros) in results.items():
        gptq_error = (inputs @ (dequantize(codes, scales, zeros, 32) - weight).T).pow(2).mean()
        rtn_error = (inputs @ (dequantize(*quantize_rtn(weight, bits, 32), 32) - weight).T).pow(2).mean()
        assert gptq_error < rtn_error, (bits, float(gptq_error), float(rtn_error))


def test_gptq_one_hessian_equals_separate_runs():
    """Quantizing all bit-widths from one factorisation gives what one run per bit-width gives."""
    weight, _, hessian = _layer_with_inputs(seed=3)
    together = gptq_quantize(weight, hessian, (2, 4), 32)
    for bits in (2, 4):
        alone = gptq_quantize(weight, hessian, (bits,), 32)[bits]
        for a, b in zip(together[bits], alone, strict=True):
            assert torch.equal(a, b)


def test_gptq_handles_dead_inputs():
    weight, inputs, _ = _layer_with_inputs(seed=1)
    inputs[:, :5] = 0
    acc = HessianAccumulator(weight.shape[1])
    acc.add(inputs)
    codes, scales, zeros = gptq_quantize(weight, acc.hessian(), (3,), 32)[3]
    assert torch.isfinite(dequantize(codes, scales, zeros, 32)).all()


def test_quantized_weight_safetensors_round_trip(tmp_path):
    weight = torch.randn(24, 96)
    qw = quantize_weight(weight, (3,), 32)[3]
    path = tmp_path / "w.safetensors"
    qw.save(str(path))
    loaded = QuantizedWeight.load(str(path))
    assert loaded.bits == 3 and loaded.group_size == 32 and loaded.shape == (24, 96)
    assert torch.equal(loaded.dequantize(), qw.dequantize())
    assert set(qw.state_dict("layer.")) == {"layer.packed", "layer.scales", "layer.zeros", "layer.meta"}
    assert qw.nbytes == 24 * 9 * 4 + 2 * 24 * 3 * 4


def test_quantized_weight_checks_shapes():
    qw = quantize_weight(torch.randn(8, 64), (4,), 32)[4]
    with pytest.raises(ValueError, match="scales has shape"):
        QuantizedWeight(qw.packed, qw.scales[:, :1], qw.zeros, 4, 32, (8, 64))


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: quantize_rtn(torch.randn(4, 64), 5, 32, "blk.q"), ValueError, r"Unsupported bit-width 5 in layer `blk.q`"),
        (lambda: quantize_rtn(torch.randn(4, 60), 4, 32, "blk.q"), ValueError, r"group_size=32 does not divide in_features=60 in layer `blk.q`"),
        (lambda: quantize_rtn(torch.randn(4, 4, 32), 4, 32, "blk.q"), ValueError, r"Expected a 2-D weight .* in layer `blk.q`"),
        (lambda: quantize_rtn(torch.tensor([[float("nan")] * 32]), 4, 32, "blk.q"), ValueError, r"NaN/Inf value\(s\)"),
        (lambda: HessianAccumulator(32, "blk.q").hessian(), ValueError, r"No calibration tokens reached layer `blk.q`"),
        (lambda: quantize_weight(torch.randn(4, 64), (4,), 32, method="gptq", layer_name="blk.q"), ValueError, r"needs the input Hessian of `blk.q`"),
        (lambda: quantize_weight(torch.randn(4, 64), (4,), 32, method="awq"), ValueError, r"Unknown quantization method 'awq'"),
        (lambda: gptq_quantize(torch.randn(4, 64), torch.eye(32), (4,), 32, layer_name="blk.q"), ValueError, r"Hessian of `blk.q` has shape"),
    ],
)
def test_bad_input_names_layer_and_fix(call, error, message):
    with pytest.raises(error, match=message):
        call()
