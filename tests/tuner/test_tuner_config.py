"""QFAConfig: normalisation, validation messages, and its round trip through adapter_config.json."""

from __future__ import annotations

import pytest
from peft import PeftConfig

from peft_qfa import QFAConfig
from peft_qfa.tuner.config import FORMAT_VERSION, QFA_PEFT_TYPE


def test_defaults_and_normalisation():
    config = QFAConfig(target_modules=["q_proj", "v_proj"], bits=[4, 2, 3, 2])
    assert config.peft_type is QFA_PEFT_TYPE
    assert config.target_modules == {"q_proj", "v_proj"}
    assert config.bits == [2, 3, 4]
    assert (
        QFAConfig().target_modules == "all-linear"
        and QFAConfig(target_modules=None).target_modules == "all-linear"
    )
    assert QFAConfig(r=8, lora_alpha=4).scaling == 0.5


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"r": 0}, ValueError, r"`r` must be a positive int"),
        ({"r": 2.5}, ValueError, r"`r` must be a positive int"),
        ({"lora_alpha": -1}, ValueError, r"`lora_alpha` must be a positive number"),
        ({"lora_dropout": 1.0}, ValueError, r"`lora_dropout` must be in \[0, 1\)"),
        ({"mergeable": "yes"}, TypeError, r"`mergeable` must be True or False"),
        ({"shared_adapters": 1}, TypeError, r"`shared_adapters` must be True or False"),
        ({"bits": [2, 5]}, ValueError, r"unsupported bit-width\(s\) in `bits=\[2, 5\]`"),
        ({"bits": 4}, TypeError, r"`bits` must be a list of ints"),
        ({"group_size": 0}, ValueError, r"`group_size` must be a positive int"),
        (
            {"layers_pattern": "layers"},
            ValueError,
            r"`layers_pattern` only applies together with `layers_to_transform`",
        ),
        ({"format_version": FORMAT_VERSION + 1}, ValueError, r"newer than this peft-qfa understands"),
    ],
)
def test_bad_values_are_refused(kwargs, error, message):
    with pytest.raises(error, match=message):
        QFAConfig(**kwargs)


def test_round_trip_through_peft_config(tmp_path):
    config = QFAConfig(
        r=4, lora_alpha=8, bits=[2, 3, 4], group_size=64, shared_adapters=True, mergeable=False
    )
    config.save_pretrained(tmp_path)
    loaded = PeftConfig.from_pretrained(tmp_path)
    assert type(loaded) is QFAConfig
    assert loaded.to_dict() == config.to_dict()
