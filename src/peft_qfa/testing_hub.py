"""Deprecated location: the loopback Hub is a test tool and no longer ships in the wheel.

It lives in the repository at ``tests/deploy/loopback_hub.py``. From a source checkout (an
editable install) this module still loads it from there, with a ``FutureWarning``; elsewhere it
raises an ``ImportError`` that says so.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

_SOURCE = Path(__file__).resolve().parents[2] / "tests" / "deploy" / "loopback_hub.py"
_NAME = "peft_qfa_loopback_hub"

if not _SOURCE.is_file():
    raise ImportError(
        "peft_qfa.testing_hub moved to tests/deploy/loopback_hub.py in the peft-qfa repository (a test-only tool "
        "that the installed package does not ship); import it from a source checkout."
    )
warnings.warn(
    "peft_qfa.testing_hub is deprecated: load tests/deploy/loopback_hub.py from the repository instead.",
    FutureWarning,
    stacklevel=2,
)
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, _SOURCE)
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module  # dataclasses resolve their module through sys.modules
    _spec.loader.exec_module(_module)
DEFAULT_USER = sys.modules[_NAME].DEFAULT_USER
LoopbackHub = sys.modules[_NAME].LoopbackHub

__all__ = ["DEFAULT_USER", "LoopbackHub"]
