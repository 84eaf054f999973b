"""Bad input fails fast, with a message that says what to do, and leaves the model untouched."""

from __future__ import annotations

import pytest
import torch
from peft import get_peft_model
from torch import nn

from peft_qfa import QFAConfig
from peft_qfa.supernet.layer import QFALinear
from peft_qfa.testing import tiny_llama
from peft_qfa.tuner import QFAAdapterLayer


def _untouched(model: nn.Module) -> bool:
    return not any(isinstance(m, QFAAdapterLayer) for m in model.modules())


def test_rank_larger_than_the_number_of_groups(llama_supernet):
    # tiny layers have in_features 64 or 128 and group size 32: 2 or 4 groups
    with pytest.raises(
        ValueError, match=r"r=3 is larger than in_features / group_size = 64 / 32 = 2 for layer `model\."
    ):
        get_peft_model(llama_supernet, QFAConfig(r=3))
    assert _untouched(llama_supernet)
    get_peft_model(llama_supernet, QFAConfig(r=3, mergeable=False))  # plain LoRA has no such limit


@pytest.mark.parametrize("targets", [["lm_head"], ["q_proj", "lm_head"], "lm_head"])
def test_full_precision_targets_are_refused(llama_supernet, targets):
    with pytest.raises(
        ValueError, match=r"not supernet layers, e\.g\. \{'lm_head': 'Linear'\}.*only adapts QFALinear"
    ):
        get_peft_model(llama_supernet, QFAConfig(r=2, target_modules=targets))
    assert _untouched(llama_supernet)


def test_a_model_without_supernet_layers_is_refused():
    model = tiny_llama(seed=0)
    with pytest.raises(
        ValueError, match=r"found no supernet layer in LlamaForCausalLM.*QFAQuantizationConfig"
    ):
        get_peft_model(model, QFAConfig(r=2))
    with pytest.raises(
        ValueError, match=r"not supernet layers, e\.g\. \{'model\.layers\.0\.self_attn\.q_proj': 'Linear'"
    ):
        get_peft_model(model, QFAConfig(r=2, target_modules=["q_proj"]))


def test_the_adapter_layer_refuses_a_plain_linear():
    with pytest.raises(TypeError, match="QFAAdapterLayer wraps supernet layers \\(QFALinear\\), got Linear"):
        QFAAdapterLayer(nn.Linear(64, 64), "default", r=2, lora_alpha=4)


def test_mixed_supernet_grids_need_one_config_each():
    model = nn.Sequential()
    model.add_module("a", QFALinear(64, 64, (2, 4), 32))
    model.add_module("b", QFALinear(64, 8, (2, 4), 16))
    with pytest.raises(ValueError, match=r"different \(bits, group_size\) settings"):
        get_peft_model(model, QFAConfig(r=2))
    peft_model = get_peft_model(model, QFAConfig(r=2, target_modules=["a"]))
    assert peft_model.peft_config["default"].group_size == 32
    assert peft_model(torch.randn(3, 64)).shape == (3, 8)


def test_unknown_adapter_name_for_merged_weights(llama_supernet):
    model = get_peft_model(llama_supernet, QFAConfig(r=2))
    with pytest.raises(ValueError, match=r"no QFA adapter 'typo'; its adapters are \['default'\]"):
        model.merged_quantized_weights(adapter_name="typo")
