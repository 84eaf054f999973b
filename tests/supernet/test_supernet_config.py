"""``QFAQuantizationConfig``: validation, serialization, registration."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers.quantizers.auto import (
    AUTO_QUANTIZATION_CONFIG_MAPPING,
    AUTO_QUANTIZER_MAPPING,
    AutoHfQuantizer,
)

from peft_qfa import Budget, QFAHfQuantizer, QFAQuantizationConfig
from peft_qfa.supernet.config import CONFIG_VERSION, parse_budget

TEXTS = ["some calibration text", "more text"]


def test_importing_peft_qfa_registers_the_method():
    assert AUTO_QUANTIZATION_CONFIG_MAPPING["qfa"] is QFAQuantizationConfig
    assert AUTO_QUANTIZER_MAPPING["qfa"] is QFAHfQuantizer
    quantizer = AutoHfQuantizer.from_config({"quant_method": "qfa", "method": "rtn"}, pre_quantized=False)
    assert isinstance(quantizer, QFAHfQuantizer)


def test_defaults_and_normalisation():
    config = QFAQuantizationConfig(bits=[4, 2, 3, 2], calibration=TEXTS)
    assert config.bits == (2, 3, 4)
    assert (config.group_size, config.method, config.granularity) == (64, "gptq", "block")
    assert (config.calibration_seq_len, config.calibration_samples) == (512, 128)
    assert config.target_modules == "all-linear" and config.modules_to_not_convert is None
    assert (config.damp_percent, config.block_size, config.act_order) == (0.01, 128, False)
    assert config.budget is None and config.version == CONFIG_VERSION
    assert QFAQuantizationConfig(method="rtn", target_modules=("q_proj", "v_proj")).target_modules == [
        "q_proj",
        "v_proj",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        (
            {"bits": (2, 5)},
            ValueError,
            r"unsupported bit-width\(s\) \[5\] in `bits=\(2, 5\)`; choose from \(2, 3, 4, 8\)",
        ),
        ({"bits": ()}, ValueError, "unsupported bit-width"),
        ({"bits": 4}, TypeError, "`bits` must be a sequence of ints"),
        ({"group_size": 0}, ValueError, "`group_size` must be a positive int"),
        ({"group_size": 64.0}, ValueError, "`group_size` must be a positive int"),
        ({"method": "awq"}, ValueError, r"unknown `method='awq'`; choose one of \('rtn', 'gptq'\)"),
        (
            {"granularity": "head"},
            ValueError,
            r"unknown `granularity='head'`; choose one of \('block', 'layer'\)",
        ),
        ({"target_modules": "("}, ValueError, "neither 'all-linear' nor a valid regex"),
        ({"target_modules": []}, TypeError, "`target_modules` must be 'all-linear'"),
        ({"modules_to_not_convert": "lm_head"}, TypeError, "`modules_to_not_convert` must be a list"),
        ({"calibration_seq_len": 0}, ValueError, "`calibration_seq_len` must be a positive int"),
        ({"damp_percent": 0}, ValueError, r"`damp_percent` must be in \(0, 1\]"),
        ({"act_order": "yes"}, TypeError, "`act_order` must be a bool"),
        ({"budget": "3 potatoes"}, ValueError, "cannot read `budget='3 potatoes'`"),
        ({"budget": -1}, ValueError, "must be a positive number of bits"),
        ({"subnet": {"model.layers.0": "2"}}, TypeError, "a subnet maps group names to int bits"),
        ({"budget": 3.0, "subnet": {"model.layers.0": 2}}, ValueError, "either `budget=` .* or `subnet=`"),
        ({"version": CONFIG_VERSION + 1}, ValueError, "newer than this peft-qfa understands"),
        ({"quant_method": "gptq"}, ValueError, "only describes 'qfa'"),
        ({"bitz": 4}, TypeError, r"unknown argument\(s\) \['bitz'\]"),
    ],
)
def test_bad_settings_are_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        QFAQuantizationConfig(**{"method": "rtn", **kwargs})


def test_gptq_needs_calibration_unless_loading_a_saved_supernet():
    with pytest.raises(ValueError, match="method='gptq' needs calibration data: pass `calibration=`"):
        QFAQuantizationConfig()
    # load-time configs of a saved supernet; the budget is parsed once, here
    assert QFAQuantizationConfig(budget="3.0bits").budget == Budget("bits", 3.0)
    assert QFAQuantizationConfig(subnet={"model.layers.0": 2}).subnet == {"model.layers.0": 2}
    assert (
        QFAQuantizationConfig.from_dict({"quant_method": "qfa", "calibration_tokens": 65536}).method == "gptq"
    )


@pytest.mark.parametrize(
    "calibration",
    [TEXTS, "one text", torch.randint(0, 9, (2, 8)), pytest.param("dataset", id="dataset")],
)
def test_calibration_and_tokenizer_never_reach_json(calibration):
    if calibration == "dataset":
        import datasets

        calibration = datasets.Dataset.from_dict({"text": TEXTS})
    config = QFAQuantizationConfig(calibration=calibration, tokenizer="some/tokenizer", budget=None)
    data = config.to_dict()
    assert "calibration" not in data and "tokenizer" not in data and "budget" not in data
    assert "calibration" not in dict(config)
    text = config.to_json_string()
    json.loads(text)
    assert "calibration text" not in text and "some/tokenizer" not in text
    assert "calibration" not in repr(config).replace("calibration_", "")


def test_round_trip_through_dict_and_budget_only_when_set():
    config = QFAQuantizationConfig(
        bits=(3, 4),
        group_size=32,
        method="rtn",
        target_modules=["q_proj"],
        modules_to_not_convert=["model.layers.0"],
        granularity="layer",
        budget="2.5GB",
    )
    data = json.loads(config.to_json_string())
    assert data["budget"] == "2500000000.0B" and data["quant_method"] == "qfa" and data["version"] == CONFIG_VERSION
    again = QFAQuantizationConfig.from_dict(data)
    assert again.to_dict() == config.to_dict()
    assert again.bits == (3, 4)


def test_deepcopy_shares_the_calibration_data():
    tokens = torch.randint(0, 9, (2, 8))
    config = QFAQuantizationConfig(calibration=tokens)
    clone = copy.deepcopy(config)
    assert clone.calibration is tokens
    assert clone.bits == config.bits and clone.to_dict() == config.to_dict()
    clone.target_modules = ["x"]
    assert config.target_modules == "all-linear"


def test_budget_forms():
    assert Budget.parse(3) == Budget("bits", 3.0)
    assert Budget.parse("2.5 bits") == Budget("bits", 2.5)
    assert Budget.parse("2.5GB") == Budget("bytes", 2.5e9)
    assert Budget.parse("500MiB") == Budget("bytes", 500 * 2**20)
    for budget in (Budget("bits", 2.75), Budget("bytes", 12345.0)):
        assert Budget.parse(budget.to_json()) == budget
    with pytest.raises(TypeError):
        Budget.parse(True)
    with pytest.raises(TypeError, match="is a subnet, not a budget"):
        Budget.parse({"model.layers.0": 2})


def test_deprecated_budget_forms_still_work():
    with pytest.warns(FutureWarning, match="Budget.parse"):
        assert parse_budget({"model.layers.0": 2}) == ("subnet", {"model.layers.0": 2})
    with pytest.warns(FutureWarning, match=r"QFAQuantizationConfig\(subnet="):
        config = QFAQuantizationConfig(budget={"model.layers.0": 2})
    assert config.budget is None and config.subnet == {"model.layers.0": 2}
