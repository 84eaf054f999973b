"""Upstream entry points, the top layer: transformers' ``"qfa"`` quantizer.

Importing this package registers :class:`QFAHfQuantizer` with transformers (the config,
:class:`~peft_qfa.QFAQuantizationConfig`, is registered by :mod:`peft_qfa.supernet.config`).
"""

from .quantizer import QFAHfQuantizer

__all__ = ["QFAHfQuantizer"]
