"""``QFAHfQuantizer``: the ``"qfa"`` method's life cycle inside ``from_pretrained``.

Two paths:

* **build** (a full-precision checkpoint + ``QFAQuantizationConfig(...)``): the targets are
  resolved and checked on the meta skeleton before any weight is read (bad settings fail fast),
  the float weights load as usual, then :func:`~peft_qfa.supernet.calibration.build_supernet`
  calibrates and swaps every target for a ``QFALinear``, dropping its float weight.
* **reload** (a folder written by ``save_pretrained``): the targets are swapped for empty
  ``QFALinear`` layers (``QFAPackedLinear`` for a materialized subnet) on the meta device, and
  transformers fills ``b{bits}_packed`` (int32, never cast), ``b{bits}_scales`` / ``b{bits}_zeros``
  and ``bias`` by name. No recalibration. A ``subnet`` is then activated, or a ``budget`` is
  searched and materialized (:mod:`peft_qfa.deploy.loading`).

This is the top layer: it calls down into the supernet and deploy layers, and nothing below
imports it (materialized models get their quantizer through transformers' registry).

The supernet is trainable through adapters only (``is_trainable``), never by updating its frozen
integer weights (``is_qat_trainable`` is False, so the Trainer refuses a bare supernet).
"""

from __future__ import annotations

from typing import Any

from transformers.quantizers import HfQuantizer
from transformers.quantizers.auto import register_quantizer

from .._compat import ignore_unexpected_keys
from ..checkpoint import checkpoint_folder
from ..deploy.loading import apply_search_budget
from ..deploy.materialize import finish_deployed
from ..supernet.calibration import build_supernet, calibration_tokens
from ..supernet.config import QUANT_METHOD, QFAQuantizationConfig
from ..supernet.integration import (
    clear_import_marker,
    find_qfa_targets,
    guard_key_patterns,
    guard_state_dict,
    mark_needs_peft_qfa,
    replace_with_qfa_linear,
)
from ..supernet.integrity import check_checkpoint_tensors
from ..supernet.scope import check_supported_model
from ..supernet.subnet import set_subnet


@register_quantizer(QUANT_METHOD)
class QFAHfQuantizer(HfQuantizer):
    """Builds (or reloads) a QFA supernet; see the module docstring."""

    quantization_config: QFAQuantizationConfig
    requires_calibration = False  # transformers' meaning: "only pre-quantized checkpoints"; we also build

    def __init__(self, quantization_config: QFAQuantizationConfig, **kwargs):
        super().__init__(quantization_config, **kwargs)
        self.target_names: list[str] = []

    def validate_environment(self, device_map: Any = None, **kwargs) -> None:
        config = self.quantization_config
        if not self.pre_quantized:
            if config.selects_subnet:
                raise ValueError(
                    "QFAQuantizationConfig(budget=...) (or subnet=...) selects a subnet of a saved supernet; this "
                    "checkpoint is a "
                    "full-precision model. Build the supernet first (without `budget`), save it, then load that "
                    "folder with the budget."
                )
            if config.method == "gptq" and config.calibration is None:
                raise ValueError(
                    "Building a QFA supernet with method='gptq' needs `calibration=` data in QFAQuantizationConfig "
                    "(texts, a datasets.Dataset or token ids), or method='rtn'."
                )
        if isinstance(device_map, dict):
            devices = {str(d) for d in device_map.values()}
            if len(devices) > 1 or "disk" in devices:
                raise ValueError(
                    f"QFA supernets load on one device; got device_map spread over {sorted(devices)}. Pass "
                    "device_map=None or a single device."
                )

    def update_attn_implementation(self, config):
        return clear_import_marker(config)  # the marker a saved QFA config.json carries for loads without us

    def _process_model_before_weight_loading(self, model, dtype=None, **kwargs) -> None:
        keep_fp32 = getattr(model, "_keep_in_fp32_modules", None)
        if self.pre_quantized:
            self.checkpoint_files = kwargs.get("checkpoint_files")
            # a supernet, or a deployed subnet (one packed bit-width per layer)
            self.target_names = replace_with_qfa_linear(model, self.quantization_config, dtype, keep_fp32)
            check_checkpoint_tensors(model, self.quantization_config, self.target_names, self.checkpoint_files)
            # Each saved layer also carries a `{layer}.weight` guard for loads without peft_qfa; it is not a
            # parameter of QFALinear, so tell the loader not to report it as unexpected.
            ignore_unexpected_keys(model, guard_key_patterns(self.target_names))
        else:
            # Resolve and check the targets on the meta skeleton, before the weights are read.
            self.target_names = list(find_qfa_targets(model, self.quantization_config, keep_fp32))
            check_supported_model(model, self.quantization_config, self.target_names)

    def _process_model_after_weight_loading(self, model, **kwargs):
        config = self.quantization_config
        mark_needs_peft_qfa(model.config)
        if self.pre_quantized:
            if config.materialized:
                if config.selects_subnet:
                    raise ValueError(
                        "This checkpoint is already a materialized QFA subnet; a `budget` applies only when loading a "
                        "supernet. Load the supernet folder with the budget, or drop `budget=`."
                    )
                finish_deployed(model, config)
            elif config.subnet is not None:
                set_subnet(model, config.subnet)
            elif config.budget is not None:
                apply_search_budget(model, config, checkpoint_folder(getattr(self, "checkpoint_files", None)))
            return model
        spread = {str(d) for d in (getattr(model, "hf_device_map", None) or {}).values()}
        if len(spread) > 1:  # device_map="auto" may resolve to several devices only after validate_environment
            raise ValueError(
                f"Building a QFA supernet needs the model on one device; device_map placed it on {sorted(spread)}. "
                "Pass device_map=None or a single device."
            )
        tokens = None
        if config.uses_calibration:
            tokens = calibration_tokens(
                config.calibration,
                seq_len=config.calibration_seq_len,
                n_samples=config.calibration_samples,
                tokenizer=config.tokenizer,
                model_path=getattr(model, "name_or_path", None),
                add_bos=config.calibration_add_bos,
            )
        build_supernet(model, config, self.target_names, tokens)
        config.base_model = getattr(model, "name_or_path", None) or None
        if tokens is not None:
            config.calibration_tokens = int(tokens.numel())
        return model

    def get_state_dict_and_metadata(self, model):
        state_dict = model.state_dict()
        state_dict.update(guard_state_dict(model))
        return state_dict, {"qfa_config_version": str(self.quantization_config.version)}

    def is_serializable(self) -> bool:
        return True

    @property
    def is_trainable(self) -> bool:
        """Adapters (the QFA tuner, or any PEFT method on the full-precision modules) may train on top."""
        return True

    @property
    def is_qat_trainable(self) -> bool:
        """The integer weights are frozen: a bare supernet cannot be fine-tuned, the Trainer says so."""
        return False


__all__ = ["QFAHfQuantizer"]
