"""The PeftType extension and the PEFT-internals check: the one place peft-qfa touches PEFT's private parts."""

from __future__ import annotations

from types import SimpleNamespace

import peft.mapping
import peft.utils
import pytest
from peft.utils import PeftType

from peft_qfa import QFAConfig, QFAModel
from peft_qfa._compat import peft_type as qfa_peft_type
from peft_qfa.tuner import QFA_NAME, QFA_PEFT_TYPE, QFA_PREFIX


def test_qfa_is_a_full_member_of_peft_type():
    member = QFA_PEFT_TYPE
    assert member is PeftType.QFA is PeftType("QFA") is PeftType["QFA"]
    assert "QFA" in list(PeftType) and member == "QFA" and member.value == "QFA"
    assert {"QFA": 1}[member] == 1  # hashes like the plain string (the mappings are keyed by it)
    assert qfa_peft_type.extend_peft_type("qfa") is member  # idempotent
    assert PeftType("LORA") is PeftType.LORA  # built-in members unaffected


def test_registered_with_peft():
    assert peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING["QFA"] is QFAConfig
    assert peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING["QFA"] is QFAModel
    assert peft.mapping.PEFT_TYPE_TO_PREFIX_MAPPING["QFA"] == "qfa_" == QFAModel.prefix
    assert qfa_peft_type.register_tuner(QFA_NAME, QFAConfig, QFAModel, QFA_PREFIX) is QFA_PEFT_TYPE  # no-op


def test_installed_peft_has_every_internal_we_use():
    assert qfa_peft_type.missing_peft_internals(peft.utils, peft.mapping, PeftType) == []


def test_moved_internals_are_named():
    class FakeType:  # an enum whose private tables moved
        pass

    fake_mapping = SimpleNamespace(PEFT_TYPE_TO_CONFIG_MAPPING={}, PEFT_TYPE_TO_TUNER_MAPPING={})
    missing = qfa_peft_type.missing_peft_internals(SimpleNamespace(), fake_mapping, FakeType)
    assert missing == [
        "peft.utils.register_peft_method",
        "peft.mapping.PEFT_TYPE_TO_PREFIX_MAPPING",
        "peft.mapping.PEFT_TYPE_TO_MIXED_MODEL_MAPPING",
        "PeftType._member_map_",
        "PeftType._value2member_map_",
        "PeftType._member_names_",
    ]


def test_incompatible_peft_raises_import_error_with_supported_versions(monkeypatch):
    monkeypatch.delattr(peft.utils, "register_peft_method")
    with pytest.raises(
        ImportError, match=r"lacks peft\.utils\.register_peft_method\. The QFA tuner supports peft>=0\.19\.1"
    ):
        qfa_peft_type.check_peft_compatibility()
