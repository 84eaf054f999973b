"""``save_pretrained`` / ``from_pretrained`` of a supernet, load-time budgets, loads without peft_qfa."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import transformers.quantizers.auto as quantizers_auto
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import peft_qfa
import peft_qfa.integrations.quantizer as quantizer_module
from peft_qfa import QFALinear, QFAQuantizationConfig


@pytest.fixture(scope="module")
def saved(model_dirs, calib_tokens, tmp_path_factory) -> dict[str, str]:
    """``{arch: folder}`` of saved 2/3/4-bit GPTQ supernets."""
    folders = {}
    for arch, source in model_dirs.items():
        model = AutoModelForCausalLM.from_pretrained(
            source, quantization_config=QFAQuantizationConfig(calibration=calib_tokens)
        )
        folder = tmp_path_factory.mktemp(f"supernet_{arch}")
        model.save_pretrained(folder)
        folders[arch] = str(folder)
    return folders


@torch.no_grad()
def logits(model, ids):
    return model(ids).logits


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_round_trip_gives_identical_outputs_for_random_subnets(
    saved, model_dirs, calib_tokens, probe_ids, arch, monkeypatch
):
    original = AutoModelForCausalLM.from_pretrained(
        model_dirs[arch], quantization_config=QFAQuantizationConfig(calibration=calib_tokens)
    )

    def no_calibration(*args, **kwargs):
        raise AssertionError("reloading a saved supernet must not recalibrate")

    monkeypatch.setattr(quantizer_module, "build_supernet", no_calibration)
    reloaded = AutoModelForCausalLM.from_pretrained(saved[arch])
    assert reloaded.hf_quantizer.pre_quantized
    space = peft_qfa.search_space(reloaded)
    subnets = [space.sample(seed) for seed in (0, 1, 2)]
    assert len({tuple(s.values()) for s in subnets}) == 3
    for subnet in subnets:
        peft_qfa.set_subnet(original, subnet)
        peft_qfa.set_subnet(reloaded, subnet)
        assert torch.equal(logits(original, probe_ids), logits(reloaded, probe_ids)), subnet


def test_saved_files_hold_every_bit_width_and_no_calibration_data(saved):
    folder = saved["llama"]
    config = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
    assert config["quant_method"] == "qfa" and config["bits"] == [2, 3, 4] and config["version"] == 1
    assert config["calibration_tokens"] == 16 * 32
    assert "calibration" not in config and "tokenizer" not in config and "budget" not in config
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        prefix = "model.layers.0.self_attn.q_proj."
        for bits in (2, 3, 4):
            assert f.get_tensor(f"{prefix}b{bits}_packed").dtype == torch.int32
            assert {f"{prefix}b{bits}_scales", f"{prefix}b{bits}_zeros"} <= keys
        assert f.get_tensor(f"{prefix}weight").tolist() == [2, 3, 4]  # the guard, see test below
        assert "lm_head.weight" in keys


def test_reload_keeps_int32_codes_and_casts_only_floats(saved, probe_ids):
    model = AutoModelForCausalLM.from_pretrained(saved["llama"], dtype=torch.bfloat16)
    layer = model.model.layers[0].self_attn.q_proj
    assert isinstance(layer, QFALinear)
    assert layer.b2_packed.dtype == torch.int32 and layer.b2_scales.dtype == torch.bfloat16
    assert torch.isfinite(logits(model, probe_ids)).all()


def test_granularity_read_from_config_object_and_after_reload(llama_dir, calib_tokens, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(
        llama_dir, quantization_config=QFAQuantizationConfig(method="rtn", granularity="layer")
    )
    assert isinstance(model.config.quantization_config, QFAQuantizationConfig)
    assert peft_qfa.search_space(model).granularity == "layer"
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path)
    assert reloaded.config.quantization_config.granularity == "layer"
    assert peft_qfa.search_space(reloaded).granularity == "layer"
    reloaded.config.quantization_config = reloaded.config.quantization_config.to_dict()  # plain-dict form
    assert peft_qfa.search_space(reloaded).granularity == "layer"


def test_explicit_subnet_budget_is_activated_on_load(saved, probe_ids):
    plain = AutoModelForCausalLM.from_pretrained(saved["llama"])
    groups = peft_qfa.search_space(plain).group_names
    with pytest.warns(UserWarning, match="loading attributes"):
        model = AutoModelForCausalLM.from_pretrained(
            saved["llama"], quantization_config=QFAQuantizationConfig(subnet={groups[0]: 2, groups[1]: 3})
        )
    assert dict(peft_qfa.get_subnet(model)) == {groups[0]: 2, groups[1]: 3}
    peft_qfa.set_subnet(plain, {groups[0]: 2, groups[1]: 3})
    assert torch.equal(logits(model, probe_ids), logits(plain, probe_ids))


def test_budget_naming_unknown_layers_is_a_clear_error(saved):
    with pytest.raises(
        ValueError, match=r"Subnet names 1 group\(s\) not in the model, e.g. \['model.layers.9'\]"
    ):
        AutoModelForCausalLM.from_pretrained(
            saved["llama"],
            quantization_config=QFAQuantizationConfig(subnet={"model.layers.0": 2, "model.layers.9": 2}),
        )
    model = AutoModelForCausalLM.from_pretrained(saved["llama"])
    with pytest.raises(ValueError, match=r"not in the model, e.g. \['model.layers.7'\]"):
        peft_qfa.set_subnet(model, {"model.layers.0": 2, "model.layers.1": 2, "model.layers.7": 4})


def test_budget_below_the_smallest_subnet_is_refused(saved):
    with pytest.raises(ValueError, match=r"below the smallest subnet of this supernet \(2 bits\)"):
        AutoModelForCausalLM.from_pretrained(
            saved["llama"], quantization_config=QFAQuantizationConfig(budget=1.5)
        )


def test_budget_reaches_quantizer_of_saved_supernet(saved, monkeypatch):
    """The one transformers workaround: load-time options of a saved checkpoint reach the quantizer."""
    assert QFAQuantizationConfig in quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES
    subnet = {"model.layers.0": 3, "model.layers.1": 2}
    model = AutoModelForCausalLM.from_pretrained(
        saved["llama"], quantization_config=QFAQuantizationConfig(subnet=subnet)
    )
    assert model.hf_quantizer.quantization_config.subnet == subnet
    assert dict(peft_qfa.get_subnet(model)) == subnet
    assert "budget" not in json.load(open(os.path.join(saved["llama"], "config.json")))["quantization_config"]

    # Without the registration transformers drops the user's budget and keeps the saved config's.
    without = tuple(
        t for t in quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES if t is not QFAQuantizationConfig
    )
    monkeypatch.setattr(quantizers_auto, "LOADING_ATTRIBUTES_CONFIG_TYPES", without)
    model = AutoModelForCausalLM.from_pretrained(
        saved["llama"], quantization_config=QFAQuantizationConfig(subnet=subnet)
    )
    assert model.hf_quantizer.quantization_config.subnet is None
    assert set(peft_qfa.get_subnet(model).values()) == {4}


def test_budget_on_a_full_precision_checkpoint_is_refused(llama_dir):
    with pytest.raises(
        ValueError, match="selects a subnet of a saved supernet; this checkpoint is a full-precision"
    ):
        AutoModelForCausalLM.from_pretrained(llama_dir, quantization_config=QFAQuantizationConfig(budget=3.0))


def test_loading_without_import_fails_loudly(saved):
    """A fresh interpreter that never imports peft_qfa must not get a silently random model: the config's
    marker stops it with a message that says what to do, and where a caller overrides the attention (which
    replaces the marker) the guard tensors still stop it with a size mismatch."""
    code = (
        "import sys\n"
        "from transformers import AutoModelForCausalLM\n"
        "for kwargs in ({}, {'attn_implementation': 'eager'}):\n"
        "    try:\n"
        f"        AutoModelForCausalLM.from_pretrained({saved['llama']!r}, **kwargs)\n"
        "        print('LOADED')\n"
        "    except Exception as err:\n"
        "        print(f'{type(err).__name__}: {err}')\n"
        "assert 'peft_qfa' not in sys.modules\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "LOADED" not in output, output[-3000:]
    assert "Unknown quantization type, got qfa" in output
    assert "ValueError: Specified `attn_implementation=\"qfa (a peft-qfa checkpoint: pip install peft-qfa, then " \
        "import peft_qfa before loading it)\"` is not supported" in output
    assert "model.layers.{0, 1}.self_attn.q_proj.weight" in output and "MISMATCH" in output
    assert "RuntimeError: You set `ignore_mismatched_sizes` to `False`, thus raising an error." in output
