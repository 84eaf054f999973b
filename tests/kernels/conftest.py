"""Make ``qfa_kernels`` importable from a source checkout that was not pip-installed.

The suite-wide ``tests/conftest.py`` sets ``TRITON_INTERPRET=1`` without CUDA and skips ``gpu``
tests; the project's pyproject installs the package from ``kernels/build/torch-universal``.
"""

import sys
from pathlib import Path

try:
    import qfa_kernels  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "kernels" / "build" / "torch-universal"))
