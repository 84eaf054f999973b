"""The QFA PEFT tuner: decoupled per-bit-width QA-LoRA adapters on a supernet, mergeable into its integers.

Importing this package registers the ``"qfa"`` PEFT method (``PeftType.QFA``, parameter prefix
``"qfa_"``), so ``get_peft_model(supernet, QFAConfig(...))``, ``PeftModel.from_pretrained``,
``AutoPeftModelForCausalLM`` and transformers' ``load_adapter`` all know it.
"""

from .config import QFAConfig
from .layer import QFAAdapterLayer
from .merge import merge_into_quantized
from .model import QFAModel, merged_quantized_weights
from .peft_type import QFA_PEFT_TYPE, QFA_PREFIX, register_qfa_tuner

register_qfa_tuner(QFAConfig, QFAModel)

__all__ = [
    "QFA_PEFT_TYPE",
    "QFA_PREFIX",
    "QFAAdapterLayer",
    "QFAConfig",
    "QFAModel",
    "merge_into_quantized",
    "merged_quantized_weights",
]
