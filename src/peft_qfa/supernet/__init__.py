"""The mixed-precision supernet: the layers (QFALinear, QFAPackedLinear), the config, spaces, budgets.

Importing this package registers :class:`QFAQuantizationConfig` with transformers; the quantizer
that acts on it lives in :mod:`peft_qfa.integrations` (``import peft_qfa`` imports both).
"""

from .budget import Budget
from .config import QFAQuantizationConfig, parse_budget
from .packed_layer import QFAPackedLinear

__all__ = ["Budget", "QFAPackedLinear", "QFAQuantizationConfig", "parse_budget"]
