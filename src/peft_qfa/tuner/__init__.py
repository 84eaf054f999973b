"""The QFA PEFT tuner: decoupled per-bit-width QA-LoRA adapters on a supernet, mergeable into its integers.

Importing this package registers the ``"qfa"`` PEFT method (``PeftType.QFA``, parameter prefix
``"qfa_"``), so ``get_peft_model(supernet, QFAConfig(...))``, ``PeftModel.from_pretrained``,
``AutoPeftModelForCausalLM`` and transformers' ``load_adapter`` all know it.
"""

from .._compat import register_tuner
from .config import QFA_NAME, QFA_PEFT_TYPE, QFA_PREFIX, QFAConfig
from .layer import QFAAdapterLayer
from .merge import merge_into_quantized
from .model import QFAModel, merged_quantized_weights

register_tuner(QFA_NAME, QFAConfig, QFAModel, prefix=QFA_PREFIX)

__all__ = [
    "QFA_NAME",
    "QFA_PEFT_TYPE",
    "QFA_PREFIX",
    "QFAAdapterLayer",
    "QFAConfig",
    "QFAModel",
    "merge_into_quantized",
    "merged_quantized_weights",
]
