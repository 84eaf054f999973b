"""Per-group clipping search: never worse than the min-max grid, same grid format, works in RTN, GPTQ and builds."""

import pytest
import torch
from transformers import AutoModelForCausalLM

from peft_qfa import QFAQuantizationConfig, merge_into_quantized
from peft_qfa.quant import (
    DEFAULT_CLIP_RATIOS,
    HessianAccumulator,
    gptq_quantize,
    quantize_rtn,
    quantize_weight,
)
from peft_qfa.quant.clipping import check_clip_ratios, hessian_blocks, quantize_rtn_clipped
from peft_qfa.quant.grid import dequantize
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.testing import tiny_llama, tiny_token_batches

GROUP = 16


def _heavy_tailed(rows=12, cols=4 * GROUP, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(rows, cols, generator=gen)
    weight[torch.randint(rows, (6,), generator=gen), torch.randint(cols, (6,), generator=gen)] *= 8  # outliers
    return weight


def _group_error(weight, codes, scales, zeros, hessian=None):
    diff = (dequantize(codes, scales, zeros, GROUP) - weight).reshape(weight.shape[0], -1, GROUP)
    if hessian is None:
        return diff.square().sum(-1)
    return torch.einsum("ogi,gij,ogj->og", diff, hessian_blocks(hessian, GROUP), diff)


def _hessian(cols, seed=1):
    inputs = torch.randn(256, cols, generator=torch.Generator().manual_seed(seed)) * torch.linspace(0.2, 3, cols)
    acc = HessianAccumulator(cols)
    acc.add(inputs)
    return acc.hessian()


@pytest.mark.parametrize("bits", [2, 3, 4])
@pytest.mark.parametrize("seed", range(4))
def test_rtn_clip_never_worse_per_group_and_better_overall(bits, seed):
    weight = _heavy_tailed(seed=seed)
    plain = _group_error(weight, *quantize_rtn(weight, bits, GROUP))
    clipped = _group_error(weight, *quantize_rtn_clipped(weight, bits, GROUP))
    assert bool((clipped <= plain * (1 + 1e-6)).all())
    assert clipped.sum() < plain.sum()


@pytest.mark.parametrize("bits", [2, 3])
def test_output_error_search_never_worse_per_group(bits):
    weight = _heavy_tailed(seed=7)
    hessian = _hessian(weight.shape[1])
    plain = _group_error(weight, *quantize_rtn(weight, bits, GROUP), hessian)
    clipped = _group_error(weight, *quantize_rtn_clipped(weight, bits, GROUP, hessian=hessian), hessian)
    assert bool((clipped <= plain * (1 + 1e-5)).all()) and clipped.sum() < plain.sum()


def test_hessian_blocks_are_the_diagonal_blocks():
    hessian = _hessian(3 * GROUP)
    blocks = hessian_blocks(hessian, GROUP)
    assert blocks.shape == (3, GROUP, GROUP)
    assert all(torch.equal(blocks[i], hessian[i * GROUP : (i + 1) * GROUP, i * GROUP : (i + 1) * GROUP]) for i in range(3))


def test_ratio_grid_of_one_is_the_minmax_grid():
    weight = _heavy_tailed(seed=3)
    for a, b in zip(quantize_rtn(weight, 3, GROUP), quantize_rtn_clipped(weight, 3, GROUP, ratios=[1.0]), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_with_clipping_lowers_output_error(act_order):
    torch.manual_seed(0)
    weight = _heavy_tailed(rows=16, cols=4 * GROUP, seed=2)
    inputs = torch.randn(256, weight.shape[1]) * torch.linspace(0.2, 3, weight.shape[1])
    acc = HessianAccumulator(weight.shape[1])
    acc.add(inputs)
    hessian = acc.hessian()
    out = inputs @ weight.T

    def output_error(result):
        codes, scales, zeros = result
        return ((inputs @ dequantize(codes, scales, zeros, GROUP).T) - out).square().sum().item()

    plain = gptq_quantize(weight, hessian, [2, 3], GROUP, act_order=act_order)
    clipped = gptq_quantize(weight, hessian, [2, 3], GROUP, act_order=act_order, clip_ratios=DEFAULT_CLIP_RATIOS)
    for bits in (2, 3):
        assert int(clipped[bits][0].max()) < 2**bits
        assert output_error(clipped[bits]) < output_error(plain[bits])


def test_clipped_weight_merges_exactly():
    torch.manual_seed(5)
    qweight = quantize_weight(_heavy_tailed(seed=5), [2], GROUP, clip_ratios=DEFAULT_CLIP_RATIOS)[2]
    lora_A, lora_B = torch.randn(3, 4), torch.randn(12, 3)
    merged = merge_into_quantized(qweight, lora_A, lora_B, 0.5)
    expected = qweight.dequantize() + 0.5 * (lora_B @ lora_A).repeat_interleave(GROUP, dim=1)
    assert ((merged.dequantize() - expected).norm() / expected.norm()).item() < 1e-5


@pytest.mark.parametrize(
    "ratios, error, message",
    [([0.9, 0.0], ValueError, r"clip ratios must lie in \(0, 1\]"), ("0.9", TypeError, "sequence of floats")],
)
def test_bad_ratios_are_refused(ratios, error, message):
    with pytest.raises(error, match=message):
        check_clip_ratios(ratios)
    with pytest.raises(error, match="QFAQuantizationConfig: `clip_ratios`"):
        QFAQuantizationConfig(method="rtn", clip_search=True, clip_ratios=ratios)


def test_config_round_trip_and_ignored_ratios_warn():
    config = QFAQuantizationConfig(method="rtn", clip_search=True, clip_ratios=[0.8, 0.9])
    assert config.search_clip_ratios == (1.0, 0.9, 0.8)
    assert QFAQuantizationConfig.from_dict(config.to_dict()).search_clip_ratios == (1.0, 0.9, 0.8)
    assert "clip_search" not in QFAQuantizationConfig(method="rtn").to_dict()
    with pytest.warns(UserWarning, match="ignored without `clip_search=True`"):
        QFAQuantizationConfig(method="rtn", clip_ratios=[0.9])


@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_supernet_build_with_clip_search_lowers_the_output_error(tmp_path, method):
    tiny_llama(seed=0).save_pretrained(tmp_path)
    reference = AutoModelForCausalLM.from_pretrained(tmp_path)
    calibration = tiny_token_batches(4, 16, reference.config.vocab_size, seed=1)

    def build(clip):
        config = QFAQuantizationConfig(bits=(2, 4), group_size=GROUP, method=method, calibration=calibration,
                                       clip_search=clip)
        return AutoModelForCausalLM.from_pretrained(tmp_path, quantization_config=config)

    plain, clipped = build(False), build(True)
    assert clipped.config.quantization_config.to_dict()["clip_search"] is True
    assert clipped.config.quantization_config.calibration_tokens == calibration.numel()
    with torch.no_grad():
        target = reference(calibration).logits
        errors = {}
        for label, model in (("plain", plain), ("clipped", clipped)):
            for layer in find_bit_layers(model).values():
                layer.active_bits = 2
            errors[label] = (model(calibration).logits - target).square().mean().item()
    assert errors["clipped"] < errors["plain"]
