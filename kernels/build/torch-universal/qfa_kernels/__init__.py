"""qfa_kernels: low-bit (2/3/4/8-bit) weight x 16-bit activation linear kernels for peft_qfa.

The lowest layer of the project: it imports nothing from ``peft_qfa`` and nothing from triton at
import time, so it loads on any machine with torch. Triton kernels run on CUDA; a plain-torch
reference runs everywhere else (see :func:`selected_backend`). Loadable both as the installed
package ``qfa_kernels`` and through ``kernels.get_local_kernel`` (see ``kernels/README.md``), so
modules inside it only use relative imports.
"""

from .backend import BACKEND_ENV, BACKENDS, selected_backend
from .layout import RUN, SUPPORTED_BITS, packed_words
from .linear import wna16_linear
from .reference import dequantize, reference_linear, unpack_codes

__version__ = "0.1.0"

__all__ = [
    "BACKENDS",
    "BACKEND_ENV",
    "RUN",
    "SUPPORTED_BITS",
    "dequantize",
    "packed_words",
    "reference_linear",
    "selected_backend",
    "unpack_codes",
    "wna16_linear",
]
