"""``QFAHfQuantizer``: the ``"qfa"`` method's life cycle inside ``from_pretrained``.

Two paths:

* **build** (a full-precision checkpoint + ``QFAQuantizationConfig(...)``): the targets are
  resolved and checked on the meta skeleton before any weight is read (bad settings fail fast),
  the float weights load as usual, then :func:`~peft_qfa.supernet.calibration.build_supernet`
  calibrates and swaps every target for a ``QFALinear``, dropping its float weight.
* **reload** (a folder written by ``save_pretrained``): the targets are swapped for empty
  ``QFALinear`` layers on the meta device, and transformers fills ``b{bits}_packed`` (int32, never
  cast), ``b{bits}_scales`` / ``b{bits}_zeros`` and ``bias`` by name. No recalibration.

The supernet is trainable through adapters only (``is_trainable``), never by updating its frozen
integer weights (``is_qat_trainable`` is False, so the Trainer refuses a bare supernet).
"""

from __future__ import annotations

from typing import Any

from transformers.quantizers import HfQuantizer
from transformers.quantizers.auto import register_quantizer

from .calibration import build_supernet, calibration_tokens
from .config import QUANT_METHOD, QFAQuantizationConfig, parse_budget
from .integration import find_qfa_targets, guard_key_patterns, guard_state_dict, replace_with_qfa_linear
from .subnet import set_subnet


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
            if config.budget is not None:
                raise ValueError(
                    "QFAQuantizationConfig(budget=...) selects a subnet of a saved supernet; this checkpoint is a "
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

    def _process_model_before_weight_loading(self, model, dtype=None, **kwargs) -> None:
        keep_fp32 = getattr(model, "_keep_in_fp32_modules", None)
        if self.pre_quantized:
            self.checkpoint_files = kwargs.get("checkpoint_files")
            if self.quantization_config.materialized:  # a deployed subnet: one packed bit-width per layer
                from ..deploy.loading import replace_with_packed_linear

                self.target_names = replace_with_packed_linear(model, self.quantization_config, dtype, keep_fp32)
            else:
                self.target_names = replace_with_qfa_linear(model, self.quantization_config, dtype, keep_fp32)
            # Each saved layer also carries a `{layer}.weight` guard for loads without peft_qfa; it is not a
            # parameter of QFALinear, so tell the loader not to report it as unexpected.
            ignored = set(getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])
            model._keys_to_ignore_on_load_unexpected = ignored | guard_key_patterns(self.target_names)
        else:
            # Resolve and check the targets on the meta skeleton, before the weights are read.
            self.target_names = list(find_qfa_targets(model, self.quantization_config, keep_fp32))

    def _process_model_after_weight_loading(self, model, **kwargs):
        config = self.quantization_config
        if self.pre_quantized:
            if config.materialized:
                from ..deploy.materialize import finish_deployed

                if config.budget is not None:
                    raise ValueError(
                        "This checkpoint is already a materialized QFA subnet; a `budget` applies only when loading a "
                        "supernet. Load the supernet folder with the budget, or drop `budget=`."
                    )
                finish_deployed(model, config)
            elif config.budget is not None:
                apply_budget(model, config, getattr(self, "checkpoint_files", None))
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


def apply_budget(model, config: QFAQuantizationConfig, checkpoint_files=None) -> None:
    """Act on ``QFAQuantizationConfig(budget=...)`` when a saved supernet is loaded.

    An explicit ``{group: bits}`` subnet is validated against the model (unknown group names fail
    with the model's real ones) and activated. A bit or byte budget is searched and materialized
    by :func:`peft_qfa.deploy.loading.apply_search_budget` (imported here, at use: the deploy layer
    sits above this one).
    """
    kind, value = parse_budget(config.budget)
    if kind == "subnet":
        set_subnet(model, value)
        return
    from ..deploy.loading import apply_search_budget, checkpoint_folder

    apply_search_budget(model, config, checkpoint_folder(checkpoint_files))


__all__ = ["QFAHfQuantizer", "apply_budget"]
