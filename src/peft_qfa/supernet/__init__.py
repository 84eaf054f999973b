"""The mixed-precision supernet: QFALinear layers, the transformers quantization method, spaces.

Importing this package registers the ``"qfa"`` quantization method with transformers
(:class:`QFAQuantizationConfig` + :class:`QFAHfQuantizer`).
"""

from .config import QFAQuantizationConfig, parse_budget
from .quantizer import QFAHfQuantizer

__all__ = ["QFAHfQuantizer", "QFAQuantizationConfig", "parse_budget"]
