"""Building a supernet through ``from_pretrained(..., quantization_config=QFAQuantizationConfig(...))``."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFALinear, QFAQuantizationConfig
from peft_qfa.quant import HessianAccumulator, quantize_weight
from peft_qfa.supernet.calibration import CALIBRATION_BATCH_SIZE
from peft_qfa.testing import tiny_llama, tiny_qwen2

ARCHS = ["llama", "qwen2"]


def build(folder, **config):
    return AutoModelForCausalLM.from_pretrained(folder, quantization_config=QFAQuantizationConfig(**config))


@torch.no_grad()
def logits(model, ids):
    return model(ids).logits


def qfa_layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, QFALinear)}


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("method", ["rtn", "gptq"])
def test_all_top_bits_subnet_equals_direct_single_bit_build(
    model_dirs, calib_tokens, probe_ids, arch, method
):
    calibration = calib_tokens if method == "gptq" else None
    supernet = build(model_dirs[arch], bits=(2, 3, 4), method=method, calibration=calibration)
    direct = build(model_dirs[arch], bits=(4,), method=method, calibration=calibration)
    peft_qfa.set_subnet(supernet, peft_qfa.search_space(supernet).uniform(4))
    assert torch.equal(logits(supernet, probe_ids), logits(direct, probe_ids))
    # and the stored 4-bit tensors themselves are the same
    for name, layer in qfa_layers(direct).items():
        ours = qfa_layers(supernet)[name]
        for part in ("packed", "scales", "zeros"):
            assert torch.equal(getattr(ours, f"b4_{part}"), getattr(layer, f"b4_{part}")), (name, part)


@pytest.mark.parametrize("arch", ARCHS)
def test_targets_become_qfa_layers_without_float_weights(model_dirs, calib_tokens, arch):
    fp = AutoModelForCausalLM.from_pretrained(model_dirs[arch])
    linear_names = {n for n, m in fp.named_modules() if isinstance(m, nn.Linear)}
    model = build(model_dirs[arch], calibration=calib_tokens)
    layers = qfa_layers(model)
    assert set(layers) == linear_names - {"lm_head"}
    assert isinstance(model.lm_head, nn.Linear)
    for name, layer in layers.items():
        assert not hasattr(layer, "weight"), name
        assert layer.candidate_bits == (2, 3, 4)
        assert all(not p.requires_grad for p in layer.parameters())
        assert layer.b3_packed.dtype == torch.int32
    if arch == "qwen2":  # Qwen2's q/k/v projections carry a bias: it is kept, in full precision
        q_proj = model.model.layers[0].self_attn.q_proj
        assert torch.equal(q_proj.bias, fp.model.layers[0].self_attn.q_proj.bias)


def test_switching_subnets_changes_outputs(llama_dir, calib_tokens, probe_ids):
    model = build(llama_dir, calibration=calib_tokens)
    space = peft_qfa.search_space(model)
    outputs = {}
    for bits in (2, 3, 4):
        peft_qfa.set_subnet(model, space.uniform(bits))
        outputs[bits] = logits(model, probe_ids)
    assert not torch.equal(outputs[2], outputs[3])
    assert not torch.equal(outputs[3], outputs[4])
    mixed = space.subnet({space.group_names[0]: 2, space.group_names[1]: 4})
    peft_qfa.set_subnet(model, mixed)
    out_mixed = logits(model, probe_ids)
    assert not torch.equal(out_mixed, outputs[2]) and not torch.equal(out_mixed, outputs[4])
    # 4-bit is closer to the full-precision model than 2-bit
    fp = AutoModelForCausalLM.from_pretrained(llama_dir)
    ref = logits(fp, probe_ids)
    assert (outputs[4] - ref).pow(2).mean() < (outputs[2] - ref).pow(2).mean()


@pytest.mark.parametrize(
    "make_model",
    [
        pytest.param(lambda: tiny_llama(0), id="llama"),
        # sliding-window layers get another attention mask than full-attention ones: the build must replay
        # each block with its own arguments, not the first block's
        pytest.param(
            lambda: tiny_qwen2(0, use_sliding_window=True, sliding_window=8, max_window_layers=1),
            id="qwen2-sliding-window",
        ),
    ],
)
def test_gptq_build_uses_full_precision_block_inputs(tmp_path, calib_tokens, make_model):
    """Each layer's copies equal GPTQ with the Hessian of its inputs in the full-precision model."""
    fp = make_model()
    fp.save_pretrained(tmp_path)
    names = [n for n, m in fp.named_modules() if isinstance(m, nn.Linear) and n != "lm_head"]
    accumulators = {n: HessianAccumulator(fp.get_submodule(n).in_features, n) for n in names}
    handles = [
        fp.get_submodule(n).register_forward_hook(lambda _m, inp, _o, acc=accumulators[n]: acc.add(inp[0]))
        for n in names
    ]
    with torch.no_grad():
        for batch in calib_tokens.split(CALIBRATION_BATCH_SIZE):
            fp(batch, use_cache=False)
    for handle in handles:
        handle.remove()

    model = build(tmp_path, calibration=calib_tokens, damp_percent=0.05)
    layers = qfa_layers(model)
    assert set(layers) == set(names)
    for name in names:
        expected = quantize_weight(
            fp.get_submodule(name).weight,
            (2, 3, 4),
            64,
            method="gptq",
            hessian=accumulators[name].hessian(),
            damp_percent=0.05,
            layer_name=name,
        )
        for bits, qweight in expected.items():
            got = layers[name].quantized(bits)
            for part in ("packed", "scales", "zeros"):
                assert torch.equal(getattr(got, part), getattr(qweight, part)), (name, bits, part)


def test_target_modules_list_regex_and_exclusions(llama_dir):
    model = build(llama_dir, method="rtn", target_modules=["q_proj", "v_proj"])
    assert set(qfa_layers(model)) == {
        f"model.layers.{i}.self_attn.{p}" for i in (0, 1) for p in ("q_proj", "v_proj")
    }
    assert isinstance(model.model.layers[0].self_attn.k_proj, nn.Linear)

    model = build(llama_dir, method="rtn", target_modules=r".*\.mlp\..*")
    assert {n.rsplit(".", 1)[1] for n in qfa_layers(model)} == {"gate_proj", "up_proj", "down_proj"}

    model = build(llama_dir, method="rtn", modules_to_not_convert=["model.layers.0", "down_proj"])
    names = set(qfa_layers(model))
    assert names and all(n.startswith("model.layers.1.") and not n.endswith("down_proj") for n in names)


def test_explicit_head_target_is_calibrated_outside_blocks(llama_dir, calib_tokens, probe_ids):
    model = build(llama_dir, calibration=calib_tokens, target_modules=["o_proj", "lm_head"])
    assert isinstance(model.lm_head, QFALinear)
    assert set(qfa_layers(model)) == {
        "model.layers.0.self_attn.o_proj",
        "model.layers.1.self_attn.o_proj",
        "lm_head",
    }
    assert torch.isfinite(logits(model, probe_ids)).all()


def test_layer_granularity_space(llama_dir):
    model = build(llama_dir, method="rtn", granularity="layer")
    space = peft_qfa.search_space(model)
    assert space.granularity == "layer"
    assert len(space) == len(qfa_layers(model)) == 14


def test_no_matching_linear_is_a_clear_error(llama_dir):
    with pytest.raises(
        ValueError, match=r"matches no linear layer of LlamaForCausalLM\. Its linear layers are e\.g\."
    ):
        build(llama_dir, method="rtn", target_modules=["not_a_layer"])
    with pytest.raises(ValueError, match="matches no linear layer"):
        build(llama_dir, method="rtn", modules_to_not_convert=["model"])


def test_group_size_must_divide_targets(llama_dir):
    with pytest.raises(ValueError, match=r"group_size=48 does not divide in_features of 14 target layer"):
        build(llama_dir, method="rtn", group_size=48)


def test_gptq_without_calibration_fails_before_loading(llama_dir):
    with pytest.raises(ValueError, match="method='gptq' needs calibration data"):
        build(llama_dir, method="gptq")


def test_tied_head_is_kept_in_full_precision_and_cannot_be_targeted(tmp_path, probe_ids):
    tiny_llama(0, tie_word_embeddings=True).save_pretrained(tmp_path)
    model = build(tmp_path, method="rtn")
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.weight is model.model.embed_tokens.weight
    with pytest.raises(ValueError, match="targets `lm_head`, whose weight is tied to the input embeddings"):
        build(tmp_path, method="rtn", target_modules=["lm_head", "q_proj"])
