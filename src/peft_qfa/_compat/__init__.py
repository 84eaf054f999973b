"""Every patch of an upstream object or of private upstream state, in one place.

1. ``PeftType`` gains a ``QFA`` member (:mod:`.peft_type`).
2. transformers' ``LOADING_ATTRIBUTES_CONFIG_TYPES`` lists ``QFAQuantizationConfig``.
3. ``model.load_adapter`` is wrapped once, so the budget search runs after the adapters load.
4. ``model.push_to_hub`` of a materialized model writes the QFA model card.
5. The private attributes ``load_adapter`` leaves behind are cleared once the adapters are merged.
6. ``model._keys_to_ignore_on_load_unexpected`` names the saved guard weights.
7. A model materialized in place gets the quantizer attributes ``from_pretrained`` would set.
8. A materialized model's ``save_pretrained`` writes into a staging folder swapped in by a rename.

Before any of them, :mod:`.versions` refuses an installed torch, transformers or peft outside the
ranges this package declares (one ``ImportError`` naming the package, its version and the fix).

Each comes with a version gate (``ImportError`` naming the supported versions when the touched
object is missing), a test (``tests/test_compat.py``, ``tests/tuner/test_tuner_peft_type.py``) and the
upstream hook that would remove it.
(The search's cached dequantized weights no longer patch ``layer.forward``: see :mod:`peft_qfa.ops`.)
"""

from . import versions  # noqa: F401  (first: it checks the versions the imports below rely on)
from .peft_type import SUPPORTED_PEFT, check_peft_compatibility, extend_peft_type, register_tuner
from .transformers import (
    SUPPORTED_TRANSFORMERS,
    accept_loading_attributes,
    after_next_load_adapter,
    bind_push_to_hub,
    bind_staged_save_pretrained,
    forget_adapter_loading,
    ignore_unexpected_keys,
    mark_quantized,
)

__all__ = [
    "SUPPORTED_PEFT",
    "SUPPORTED_TRANSFORMERS",
    "accept_loading_attributes",
    "after_next_load_adapter",
    "bind_push_to_hub",
    "bind_staged_save_pretrained",
    "check_peft_compatibility",
    "extend_peft_type",
    "forget_adapter_loading",
    "ignore_unexpected_keys",
    "mark_quantized",
    "register_tuner",
]
