"""The upstream patches of ``peft_qfa._compat`` (transformers side; the PeftType one has
tests/tuner/test_tuner_peft_type.py): each does its job, is undone where it says so, and its
version gate names the supported versions when the patched object is gone."""

from __future__ import annotations

import pytest
import transformers.quantizers.auto as quantizers_auto
from transformers import LlamaForCausalLM

from peft_qfa import QFAQuantizationConfig, _compat


@pytest.fixture
def model():
    from peft_qfa.testing import tiny_llama

    return tiny_llama()


def test_accept_loading_attributes_is_idempotent(monkeypatch):
    assert QFAQuantizationConfig in quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES
    before = quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES
    _compat.accept_loading_attributes(QFAQuantizationConfig)
    assert quantizers_auto.LOADING_ATTRIBUTES_CONFIG_TYPES == before
    monkeypatch.delattr(quantizers_auto, "LOADING_ATTRIBUTES_CONFIG_TYPES")
    with pytest.raises(ImportError, match=r"LOADING_ATTRIBUTES_CONFIG_TYPES.*supports transformers>=5\.17,<6"):
        _compat.accept_loading_attributes(QFAQuantizationConfig)


def test_after_next_load_adapter_runs_once_then_restores_the_method(model, monkeypatch):
    calls = []
    monkeypatch.setattr(LlamaForCausalLM, "load_adapter", lambda self, *a, **k: calls.append("load") or "info")
    _compat.after_next_load_adapter(model, lambda: calls.append("action"))
    assert "load_adapter" in vars(model)
    assert model.load_adapter("folder") == "info"
    assert calls == ["load", "action"] and "load_adapter" not in vars(model)
    model.load_adapter("folder")
    assert calls == ["load", "action", "load"]


def test_bind_push_to_hub_binds_to_the_instance_only(model):
    _compat.bind_push_to_hub(model, lambda self, repo_id: (self, repo_id))
    assert model.push_to_hub("me/repo") == (model, "me/repo")
    assert "push_to_hub" not in vars(LlamaForCausalLM)  # the class keeps transformers' method


def test_bind_staged_save_pretrained_writes_through_the_staging_folder(model, tmp_path):
    import contextlib

    staged = []

    @contextlib.contextmanager
    def staged_folder(target, what):
        staging = tmp_path / "staging"
        staged.append((str(target), what))
        yield staging
        staging.rename(target)

    _compat.bind_staged_save_pretrained(model, staged_folder)
    model.save_pretrained(tmp_path / "out")
    assert staged == [(str(tmp_path / "out"), "save_pretrained folder")]
    assert (tmp_path / "out" / "config.json").is_file() and not (tmp_path / "staging").exists()
    assert "save_pretrained" not in vars(LlamaForCausalLM)  # the class keeps transformers' method


def test_forget_adapter_loading_clears_what_load_adapter_leaves(model):
    model.peft_config = {"default": object()}
    model._hf_peft_config_loaded = True
    model._weight_conversions = ["prefixed"]
    _compat.forget_adapter_loading(model)
    assert not hasattr(model, "peft_config") and model._hf_peft_config_loaded is False
    assert model._weight_conversions is None


def test_ignore_unexpected_keys_adds_to_the_models_list(model):
    _compat.ignore_unexpected_keys(model, [r"a\.weight$"])
    _compat.ignore_unexpected_keys(model, [r"b\.weight$"])
    assert {r"a\.weight$", r"b\.weight$"} <= set(model._keys_to_ignore_on_load_unexpected)
    assert LlamaForCausalLM._keys_to_ignore_on_load_unexpected != model._keys_to_ignore_on_load_unexpected


def test_mark_quantized_attaches_the_registered_quantizer(model):
    from peft_qfa import QFAHfQuantizer

    config = QFAQuantizationConfig(method="rtn", layer_bits={"model.layers.0.mlp.up_proj": 4})
    _compat.mark_quantized(model, config)
    assert isinstance(model.hf_quantizer, QFAHfQuantizer) and model.hf_quantizer.pre_quantized
    assert model.is_quantized and model.quantization_method == "qfa"
    assert model.config.quantization_config is config


def test_version_gates_name_the_missing_object(monkeypatch):
    class Bare:
        pass

    with pytest.raises(ImportError, match="PreTrainedModel.load_adapter"):
        _compat.after_next_load_adapter(Bare(), lambda: None)
    with pytest.raises(ImportError, match="PreTrainedModel.push_to_hub"):
        _compat.bind_push_to_hub(Bare(), lambda self: None)
    with pytest.raises(ImportError, match="PreTrainedModel.save_pretrained"):
        _compat.bind_staged_save_pretrained(Bare(), lambda target, what: None)
    with pytest.raises(ImportError, match="_hf_peft_config_loaded"):
        _compat.forget_adapter_loading(Bare())
