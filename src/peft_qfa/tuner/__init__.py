"""The QFA PEFT tuner: decoupled per-bit-width adapters on a supernet (QA-LoRA, PEQA, L4Q, LR-QAT), deployable as integers.

Importing this package registers the ``"qfa"`` PEFT method (``PeftType.QFA``, parameter prefix
``"qfa_"``), so ``get_peft_model(supernet, QFAConfig(...))``, ``PeftModel.from_pretrained``,
``AutoPeftModelForCausalLM`` and transformers' ``load_adapter`` all know it.
"""

from .._compat import register_tuner
from .config import QFA_NAME, QFA_PEFT_TYPE, QFA_PREFIX, QFAConfig
from .layer import QFAAdapterLayer
from .merge import merge_into_quantized
from .model import QFAModel, adapter_variants, merged_quantized_weights, trainable_parameters
from .variants import VARIANTS, get_variant

register_tuner(QFA_NAME, QFAConfig, QFAModel, prefix=QFA_PREFIX)

__all__ = [
    "QFA_NAME",
    "QFA_PEFT_TYPE",
    "QFA_PREFIX",
    "QFAAdapterLayer",
    "QFAConfig",
    "QFAModel",
    "VARIANTS",
    "adapter_variants",
    "get_variant",
    "merge_into_quantized",
    "merged_quantized_weights",
    "trainable_parameters",
]
