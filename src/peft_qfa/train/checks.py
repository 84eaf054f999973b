"""``peft-qfa train``'s checks that run before the data are tokenized or the supernet is built.

Values (bits, ranks, rates) are checked first; then the model is built as an empty skeleton on the
meta device from its ``config.json`` (no weights read), so the architecture scope, the target
layers, the group size and the adapter rank are checked in seconds even for a large model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..quant import SUPPORTED_BITS
from ..validate import (
    existing_files,
    finite_number,
    looks_like_local_path,
    model_source,
    output_folder,
    positive_int,
)

TEXT_SUFFIXES = (".txt", ".text", ".md")
JSON_SUFFIXES = (".json", ".jsonl")
"""The data files ``peft-qfa train`` reads (a ``--data`` entry without one of them is a ``datasets`` name)."""


def check_values(options: Mapping[str, Any]) -> None:
    """The numbers and choices of a resolved option set (each error names its flag)."""
    bad_bits = [b for b in options["bits"] if b not in SUPPORTED_BITS]
    if bad_bits or not options["bits"]:
        raise ValueError(
            f"--bits={','.join(map(str, options['bits']))}: unsupported bit-width(s) {bad_bits or '(none given)'}; "
            f"choose from {','.join(map(str, SUPPORTED_BITS))}."
        )
    for name in ("group_size", "calibration_samples", "steps", "batch_size", "grad_accum", "seq_len", "logging_steps"):
        positive_int(f"--{name.replace('_', '-')}", options[name])
    for name in ("r", "period", "save_steps"):
        if options[name] is not None:
            positive_int(f"--{name.replace('_', '-')}", options[name])
    positive_int("--search-tokens", options["search_tokens"], allow_zero=True)
    positive_int("--seed", options["seed"], allow_zero=True)
    finite_number("--lr", options["lr"])
    finite_number("--max-grad-norm", options["max_grad_norm"])
    if options["lora_alpha"] is not None:
        finite_number("--lora-alpha", options["lora_alpha"])
    if options["fixed_bits"] is not None and options["fixed_bits"] not in options["bits"]:
        raise ValueError(f"--fixed-bits={options['fixed_bits']} is not one of --bits={list(options['bits'])}.")
    positive_int("--warmup-steps", options["warmup_steps"], allow_zero=True)
    train_bits = options["train_bits"]
    if train_bits is not None and (not train_bits or set(train_bits) - set(options["bits"])):
        raise ValueError(
            f"--train-bits={','.join(map(str, train_bits))} must be a non-empty subset of --bits="
            f"{','.join(map(str, options['bits']))}."
        )
    if train_bits is not None and options["fixed_bits"] is not None and options["fixed_bits"] not in train_bits:
        raise ValueError(
            f"--fixed-bits={options['fixed_bits']} is not one of --train-bits={','.join(map(str, train_bits))}."
        )
    if options["warmup_steps"] and len(train_bits or options["bits"]) < 2:
        raise ValueError("--warmup-steps leaves out the lowest of --train-bits, so it needs at least two of them.")
    if options["warmup_steps"] and options["warmup_steps"] >= options["steps"]:
        raise ValueError(f"--warmup-steps={options['warmup_steps']} must be fewer than --steps={options['steps']}.")
    check_trainer_names(options)


def check_trainer_names(options: Mapping[str, Any]) -> None:
    """``--lr-scheduler`` and ``--report-to`` name things transformers knows (its own checks come much later)."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK
    from transformers.trainer_utils import SchedulerType

    schedules = [s.value for s in SchedulerType]
    if options["lr_scheduler"] not in schedules:
        raise ValueError(f"--lr-scheduler={options['lr_scheduler']!r} is not one of {schedules}.")
    known = {"none", "all", *INTEGRATION_TO_CALLBACK}
    unknown = [name for name in str(options["report_to"]).split(",") if name.strip() not in known]
    if unknown:
        raise ValueError(f"--report-to: unknown integration(s) {unknown}; choose from {sorted(known)}.")


def check_paths(options: Mapping[str, Any]) -> None:
    """The model folder, the data files, the output folder and an explicit checkpoint to resume from."""
    model_source("--model", options["model"])
    named_files = [d for d in options["data"] if d.endswith(TEXT_SUFFIXES + JSON_SUFFIXES) or looks_like_local_path(d)]
    local = [d for d in options["data"] if Path(d).expanduser().exists()]
    if local or named_files:  # local data (a `datasets` name has no suffix and is not a path)
        folders = [d for d in local if Path(d).expanduser().is_dir()]
        existing_files("--data", [d for d in options["data"] if d not in folders])
    output = output_folder("--output", options["output"])
    resume = options["resume"]
    if resume not in (None, "auto"):
        path = Path(resume).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"--resume `{resume}`: no such checkpoint folder (or give `auto`).")
        from .resume import incomplete_reason

        reason = incomplete_reason(path)
        if reason:
            raise ValueError(f"--resume `{resume}` is an incomplete checkpoint ({reason}); give another, or `auto`.")
    elif resume == "auto" and not (output / "checkpoints").is_dir():
        raise FileNotFoundError(
            f"--resume auto: {output / 'checkpoints'} does not exist; run without --resume, or with --save-steps first."
        )


def check_model(options: Mapping[str, Any]) -> None:
    """Scope, targets, group size and rank on an empty skeleton of the model (nothing is read but config.json)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ..supernet.config import QFAQuantizationConfig
    from ..supernet.integration import find_qfa_targets
    from ..supernet.scope import check_supported_model
    from ..tuner.layer import check_rank

    try:
        model_config = AutoConfig.from_pretrained(options["model"])
    except (OSError, ValueError) as err:
        raise ValueError(f"--model `{options['model']}`: cannot read its config.json: {err}") from None
    quantized = getattr(model_config, "quantization_config", None)
    if quantized is not None:
        method = quantized.get("quant_method") if isinstance(quantized, dict) else getattr(quantized, "quant_method", "?")
        raise ValueError(
            f"--model `{options['model']}` is already quantized (quant_method={method!r}); `peft-qfa train` builds the "
            "supernet itself from the full-precision model, so give that model's folder or Hub id."
        )
    try:
        with torch.device("meta"):
            skeleton = AutoModelForCausalLM.from_config(model_config)
    except ValueError as err:
        raise ValueError(
            f"--model `{options['model']}` ({model_config.model_type}) is not a causal language model: {err}"
        ) from None
    quantization = QFAQuantizationConfig(
        bits=options["bits"], group_size=options["group_size"], method="rtn", granularity=options["granularity"]
    )
    targets = find_qfa_targets(skeleton, quantization, getattr(skeleton, "_keep_in_fp32_modules", None))
    check_supported_model(skeleton, quantization, list(targets))
    if options["r"] is not None:
        for name, linear in targets.items():
            try:
                check_rank(options["r"], linear.in_features, options["group_size"], True, name)
            except ValueError as err:
                raise ValueError(f"--r={options['r']}: {err}") from None


def check_train_options(options: Mapping[str, Any]) -> None:
    """Every check that can run before any work (see the module docstring)."""
    check_values(options)
    check_paths(options)
    check_model(options)


__all__ = ["check_model", "check_paths", "check_train_options", "check_trainer_names", "check_values"]
