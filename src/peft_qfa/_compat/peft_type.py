"""Upstream patch 1 of 6: a new member of PEFT's closed ``PeftType`` enum.

PEFT registers third-party tuners with ``peft.utils.register_peft_method``, but that function
only accepts names that are already members of the closed ``PeftType`` string enum, and Python's
``Enum`` has no public way to add a member. So this module adds one by writing the enum's private
tables (``_member_map_``, ``_value2member_map_``, ``_member_names_``), after checking that the
installed PEFT still has every internal this relies on. A PEFT release that moves them fails at
``import peft_qfa`` with an ``ImportError`` naming the supported versions, instead of failing
later with a ``KeyError`` deep inside ``PeftModel.from_pretrained``.

Upstream hook that would make this unnecessary: ``register_peft_method`` accepting a name that is
not yet a ``PeftType`` member (or ``PeftType`` becoming an open registry).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import peft
import peft.mapping
import peft.utils
from peft.utils import PeftType

SUPPORTED_PEFT = "peft>=0.19.1 (tested with 0.19.1 and 0.21.2)"

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
            "`pip install 'peft>=0.19.1'`."
        )


def extend_peft_type(name: str) -> PeftType:
    """Add ``name.upper()`` as a member of ``PeftType`` (idempotent) and return the member.

    Afterwards ``PeftType.QFA``, ``PeftType("QFA")``, ``PeftType["QFA"]`` and ``"QFA" in list(PeftType)``
    behave as for a built-in member, and the member hashes like the plain string ``"QFA"``.
    """
    check_peft_compatibility()
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


def register_tuner(name: str, config_cls: type, model_cls: type, prefix: str) -> PeftType:
    """Add ``name`` to ``PeftType`` and register the tuner with PEFT once (a second call is a no-op).

    The version gate (:func:`check_peft_compatibility`) runs first, in :func:`extend_peft_type`.
    """
    member = extend_peft_type(name)
    registered = peft.mapping.PEFT_TYPE_TO_TUNER_MAPPING.get(member)
    if registered is model_cls and peft.mapping.PEFT_TYPE_TO_CONFIG_MAPPING.get(member) is config_cls:
        return member
    peft.utils.register_peft_method(name=name, config_cls=config_cls, model_cls=model_cls, prefix=prefix)
    return member


__all__ = [
    "SUPPORTED_PEFT",
    "check_peft_compatibility",
    "extend_peft_type",
    "missing_peft_internals",
    "register_tuner",
]
