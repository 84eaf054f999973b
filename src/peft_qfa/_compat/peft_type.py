"""The one place where peft-qfa reaches into PEFT's internals: the ``QFA`` member of ``PeftType``.

PEFT registers third-party tuners with ``peft.utils.register_peft_method``, but that function
only accepts names that are already members of the closed ``PeftType`` string enum, and Python's
``Enum`` has no public way to add a member. So this module adds one by writing the enum's private
tables (``_member_map_``, ``_value2member_map_``, ``_member_names_``), after checking that the
installed PEFT still has every internal this relies on. A PEFT release that moves them fails at
``import peft_qfa`` with an ``ImportError`` naming the supported versions, instead of failing
later with a ``KeyError`` deep inside ``PeftModel.from_pretrained``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import peft
import peft.mapping
import peft.utils
from peft.utils import PeftType

from ..supernet.space import ADAPTER_PREFIX

QFA_NAME = "qfa"
"""Registered name of the tuner (lower case, as ``register_peft_method`` requires)."""

QFA_PREFIX = ADAPTER_PREFIX
"""Name prefix of every adapter parameter (``"qfa_"``); the cost model leaves parameters under it out of
deployed bytes, so it is defined once, in :mod:`peft_qfa.supernet.space`."""

SUPPORTED_PEFT = "peft>=0.18 (tested with 0.18.0 and 0.21.2)"

_MAPPINGS = (
    "PEFT_TYPE_TO_CONFIG_MAPPING",
    "PEFT_TYPE_TO_TUNER_MAPPING",
    "PEFT_TYPE_TO_PREFIX_MAPPING",
    "PEFT_TYPE_TO_MIXED_MODEL_MAPPING",
)
_ENUM_TABLES = {"_member_map_": dict, "_value2member_map_": dict, "_member_names_": list}


def missing_peft_internals(peft_utils: Any, peft_mapping: Any, peft_type: Any) -> list[str]:
    """Names of the PEFT internals the QFA registration needs that ``peft_utils``/``peft_mapping``/``peft_type`` lack."""
    missing = []
    if not callable(getattr(peft_utils, "register_peft_method", None)):
        missing.append("peft.utils.register_peft_method")
    for name in _MAPPINGS:
        if not isinstance(getattr(peft_mapping, name, None), dict):
            missing.append(f"peft.mapping.{name}")
    for name, kind in _ENUM_TABLES.items():
        if not isinstance(peft_type.__dict__.get(name), kind):
            missing.append(f"PeftType.{name}")
    return missing


def check_peft_compatibility(
    peft_utils: ModuleType = peft.utils, peft_mapping: ModuleType = peft.mapping, peft_type: Any = PeftType
) -> None:
    """Raise ``ImportError`` if the installed PEFT lacks an internal the QFA tuner registration uses."""
    missing = missing_peft_internals(peft_utils, peft_mapping, peft_type)
    if missing:
        raise ImportError(
            f"peft-qfa cannot register its QFA tuner with the installed peft {peft.__version__}: it lacks "
            f"{', '.join(missing)}. The QFA tuner supports {SUPPORTED_PEFT}; install one of those, e.g. "
            "`pip install 'peft>=0.18,<=0.21.2'`."
        )


def extend_peft_type(name: str) -> PeftType:
    """Add ``name.upper()`` as a member of ``PeftType`` (idempotent) and return the member.

    Afterwards ``PeftType.QFA``, ``PeftType("QFA")``, ``PeftType["QFA"]`` and ``"QFA" in list(PeftType)``
    behave as for a built-in member, and the member hashes like the plain string ``"QFA"``.
    """
    key = name.upper()
    if key in PeftType.__members__:
        return PeftType[key]
    member = str.__new__(PeftType, key)
    member._name_ = key
    member._value_ = key
    member.__objclass__ = PeftType
    if hasattr(PeftType, "_sort_order_"):
        member._sort_order_ = len(PeftType._member_names_)
    type.__setattr__(
        PeftType, key, member
    )  # EnumType.__setattr__ refuses to rebind members; this is a new one
    PeftType._member_map_[key] = member
    PeftType._value2member_map_[key] = member
    PeftType._member_names_.append(key)
    return member


check_peft_compatibility()
QFA_PEFT_TYPE = extend_peft_type(QFA_NAME)


def register_qfa_tuner(config_cls: type, model_cls: type) -> None:
    """Register the QFA config and tuner with PEFT once (a second import of the package is a no-op)."""
    registered = peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING.get(QFA_PEFT_TYPE)
    if registered is model_cls and peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING.get(QFA_PEFT_TYPE) is config_cls:
        return
    peft.utils.register_peft_method(
        name=QFA_NAME, config_cls=config_cls, model_cls=model_cls, prefix=QFA_PREFIX
    )


__all__ = [
    "QFA_NAME",
    "QFA_PEFT_TYPE",
    "QFA_PREFIX",
    "SUPPORTED_PEFT",
    "check_peft_compatibility",
    "extend_peft_type",
    "missing_peft_internals",
    "register_qfa_tuner",
]
