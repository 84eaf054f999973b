"""The training recipe: build a supernet, add QFA adapters, train every subnet in one Trainer run, save.

:func:`train_supernet` is the recipe as a Python call (``peft_qfa.train_supernet(model=..., data=...,
output=...)``); ``peft-qfa train`` (:mod:`peft_qfa.train.cli`) only parses its flags into the same
options. Options are the flag names with ``_`` (``group_size``, ``steps``, ...); a ``config`` key
names a JSON file of options, which explicit ones override. The run: tokenize the data into ``seq_len`` blocks; build the supernet with
``QFAQuantizationConfig`` (GPTQ calibrates on the training blocks); wrap it with ``QFAConfig``; train
with the Trainer and ``QFASamplerCallback`` (Trainer checkpoints in ``OUTPUT/checkpoints`` when
``--save-steps`` is set, resumable with ``--resume``); save the supernet, its adapters, the tokenizer and the
held-back search tokens into ``OUTPUT`` (``peft_qfa.save_supernet``) and print how often each bit-width was trained per group.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from ..validate import parsed as parse_flag
from ..windows import window_bos
from .checks import JSON_SUFFIXES, TEXT_SUFFIXES
from .samplers import SAMPLERS

SUMMARY_FILE = "qfa_training.json"


def _bits(value: Any) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [part for part in value.replace(" ", "").split(",") if part]
    try:
        return tuple(int(b) for b in value)
    except (TypeError, ValueError):
        raise ValueError(f"`bits` must be a comma-separated list like 2,3,4, got {value!r}.") from None


def _paths(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _auto_bool(value: Any) -> bool | None:
    return None if value is None or str(value).lower() == "auto" else _bool(value)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "yes", "1"):
        return True
    if str(value).lower() in ("false", "no", "0"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


DEFAULT_RANK = 16


def default_rank(supernet, group_size: int) -> tuple[int, str]:
    """``DEFAULT_RANK``, or less when a layer has fewer quantization groups (a mergeable adapter's rank
    cannot exceed them); returns the rank and a line that says why it was chosen."""
    from ..supernet.layer import find_bit_layers

    widths = {name: layer.in_features for name, layer in find_bit_layers(supernet).items()}
    if not widths:
        return DEFAULT_RANK, f"adapter rank r={DEFAULT_RANK}"
    narrowest = min(widths, key=widths.get)
    allowed = widths[narrowest] // group_size
    if allowed >= DEFAULT_RANK:
        return DEFAULT_RANK, f"adapter rank r={DEFAULT_RANK}"
    return allowed, (
        f"adapter rank r={allowed}: the largest `{narrowest}` allows "
        f"({widths[narrowest]} inputs / group size {group_size}); --r sets it"
    )


@dataclass(frozen=True)
class Option:
    name: str
    default: Any
    help: str
    parse: Callable[[Any], Any] = str
    choices: Sequence[str] | None = None
    nargs: str | None = None
    const: Any = None  # the value of the bare flag (``--clip-search``), which then takes an optional value


OPTIONS: tuple[Option, ...] = (
    Option("model", None, "Path (or cached Hub id) of the full-precision causal LM to build the supernet from."),
    Option("data", None, "Training data: local .txt/.json/.jsonl files or folders of them, or one `datasets` name.",
           _paths, nargs="+"),
    Option("output", None, "Folder for the trained supernet + adapters (checkpoints go to OUTPUT/checkpoints)."),
    Option("text_column", "text", "Text column of JSON files or of a `datasets` dataset."),
    Option("data_split", "train", "Split of a `datasets` dataset."),
    Option("bits", (2, 3, 4), "Candidate bit-widths, comma-separated.", _bits),
    Option("group_size", 64, "Quantization group size (input columns per scale/zero).", int),
    Option("method", "gptq", "Base quantizer; GPTQ calibrates on the training data.", choices=("gptq", "rtn")),
    Option("clip_search", False, "Per-group clipping search before RTN/GPTQ rounding: each group's clip ratio with the "
           "least output error on the calibration blocks (also with --method rtn); `--clip-search` alone switches it "
           "on.", _bool, const="true"),
    Option("calibration_samples", 128, "GPTQ (and --clip-search) calibration blocks, taken evenly from the training data.", int),
    Option("granularity", "block", "Search-space unit: one bit-width per decoder block or per layer.",
           choices=("block", "layer")),
    Option("variant", "qa-lora", "Adapter method: QA-LoRA adapters (default), PEQA (scales only), L4Q (LoRA before a "
           "learned quantizer; needs 2+ --bits, the highest is its reference copy) or LR-QAT (low-rank update inside "
           "the rounding; bits up to 6).", choices=("qa-lora", "peqa", "l4q", "lr-qat")),
    Option("r", None, f"Adapter rank, at most in_features / group_size (default: {DEFAULT_RANK}, or the largest the "
           "model's narrowest layer allows if that is smaller).", _optional_int),
    Option("lora_alpha", None, "Adapter scale numerator (scale = lora_alpha / r; default: 2 x r).", _optional_float),
    Option("distill", "float", "Objective: distil the float model into every sampled subnet (`float`: the float model "
           "in no-grad; `cached`: its top-k log-probabilities computed before the build, for models that do not fit "
           "twice; `subnet`: the supernet's all-highest-bits subnet, no float model) or `none` (the LM loss).",
           choices=("float", "cached", "subnet", "none")),
    Option("distill_temperature", 1.0, "Distillation temperature.", float),
    Option("distill_weight", 1.0, "Weight of the KL in the loss; the LM loss gets 1 - weight.", float),
    Option("distill_top_k", 64, "Tokens per position kept by `--distill cached`.", int),
    Option("teacher_dtype", None, "Dtype of the float teacher (default: --dtype; bfloat16 halves its memory).",
           choices=("float32", "bfloat16", "float16")),
    Option("schedule", "resource-balanced", "Subnet sampler.", choices=tuple(sorted(SAMPLERS))),
    Option("fixed_bits", None, "The bit-width of every group for `--schedule fixed`.", _optional_int),
    Option("train_bits", None, "Bit-widths the sampler draws, comma-separated (default: all of --bits); the supernet "
           "keeps every bit-width of --bits for the search.", _bits),
    Option("warmup_steps", 0, "Optimizer steps at the start that leave out the lowest of --train-bits, so the "
           "higher bit-widths' adapters settle before mixed subnets with low-bit groups train them.", int),
    Option("seed", 0, "Seed of the sampler, the adapter initialisation and the data order.", int),
    Option("period", None, "Resource-balanced wave period in optimizer steps (default: 80%% of --steps).",
           _optional_int),
    Option("steps", 1000, "Optimizer steps.", int),
    Option("lr", 1e-4, "Learning rate.", float),
    Option("lr_scheduler", "constant", "transformers learning-rate schedule (QA-LoRA's recipe: constant)."),
    Option("max_grad_norm", 0.3, "Gradient clipping (QA-LoRA's recipe: 0.3).", float),
    Option("batch_size", 4, "Blocks per device per micro-batch.", int),
    Option("grad_accum", 1, "Micro-batches per optimizer step (all share one subnet).", int),
    Option("seq_len", 512, "Tokens per training block.", int),
    Option("add_bos", "auto", "Start every training, calibration and search window with the BOS token: `auto` "
           "follows the tokenizer's default (Llama and Mistral tokenizers add one), or true / false.", _auto_bool),
    Option("search_tokens", 2048, "Tokens held back from the end of the data (at most 10%% of it, whole blocks) "
           "and saved with the supernet: a later load with only a budget scores subnets on them (0: none).", int),
    Option("dtype", "float32", "Dtype of scales, zeros and full-precision layers.",
           choices=("float32", "bfloat16", "float16")),
    Option("logging_steps", 10, "Log loss and qfa/avg_bits every N steps.", int),
    Option("save_steps", None, "Write a resumable Trainer checkpoint every N steps.", _optional_int),
    Option("resume", None, "Resume from a checkpoint folder, or `auto` for the latest in OUTPUT/checkpoints."),
    Option("report_to", "none", "transformers reporting integration (none, tensorboard, wandb, ...)."),
)
_BY_NAME = {option.name: option for option in OPTIONS}
REQUIRED = ("model", "data", "output")


def resolve_options(given: Mapping[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by the ``config`` file, overridden by the options given; parsed and checked.

    ``None`` means "not given". Parsing is idempotent, so resolved options resolve to themselves.
    """
    given = dict(given if isinstance(given, Mapping) else vars(given))  # an argparse.Namespace, too
    given.pop("_run", None)
    given.pop("command", None)
    config_path = given.pop("config", None)
    values = {option.name: option.default for option in OPTIONS}
    if config_path:
        values.update(_read_config(config_path))
    values.update({k: v for k, v in given.items() if v is not None})
    missing = [name for name in REQUIRED if not values.get(name)]
    if missing:
        flags = ", ".join("--" + name for name in missing)
        raise ValueError(f"peft-qfa train: {flags} must be given (as flags or in the --config file).")
    parsed = {}
    for name, value in values.items():
        option = _BY_NAME[name]
        flag = "--" + name.replace("_", "-")
        parsed[name] = parse_flag(flag, value, option.parse) if value is not None else None
        if option.choices and parsed[name] is not None and parsed[name] not in option.choices:
            raise ValueError(f"peft-qfa train: `{name}={parsed[name]!r}` is not one of {list(option.choices)}.")
    if parsed["schedule"] == "fixed" and parsed["fixed_bits"] is None:
        raise ValueError("peft-qfa train: `--schedule fixed` needs `--fixed-bits` (the bit-width to train).")
    for name in ("steps", "batch_size", "grad_accum", "seq_len", "logging_steps"):
        if parsed[name] <= 0:
            raise ValueError(f"peft-qfa train: --{name.replace('_', '-')} must be positive, got {parsed[name]}.")
    distillation_config(parsed)  # validates the distillation options
    check_variant(parsed)
    return parsed


def check_variant(options: Mapping[str, Any]) -> None:
    """Refuse a ``--variant`` the ``--bits`` / ``--schedule`` cannot serve, before the (slow) build."""
    variant, bits = options["variant"], options["bits"]
    if variant == "l4q" and len(bits) < 2:
        raise ValueError(
            f"peft-qfa train: --variant l4q needs a higher-precision copy than the bits it trains; --bits {bits[0]} "
            f"holds one bit-width. Add an 8-bit copy: --bits {bits[0]},8 --schedule fixed --fixed-bits {bits[0]}."
        )
    if variant == "lr-qat" and max(bits) > 6:
        raise ValueError(
            f"peft-qfa train: --variant lr-qat keeps its integer weights in int8 fixed point (at most 6 bits); drop "
            f"{max(bits)} from --bits."
        )


def distillation_config(options: Mapping[str, Any]):
    """The ``DistillationConfig`` of the ``--distill*`` options, or ``None`` for ``--distill none``."""
    from .distillation import DistillationConfig

    if options["distill"] == "none":
        return None
    try:
        return DistillationConfig(
            teacher=options["distill"],
            temperature=options["distill_temperature"],
            kl_weight=options["distill_weight"],
            top_k=options["distill_top_k"],
        )
    except ValueError as err:  # name the flag, not the config field
        message = str(err).removeprefix("DistillationConfig: ")
        for field, flag in (("temperature", "--distill-temperature"), ("kl_weight", "--distill-weight"),
                            ("top_k", "--distill-top-k"), ("teacher", "--distill")):
            message = message.replace(f"`{field}`", flag)
        raise ValueError(f"peft-qfa train: {message}") from None


def _read_config(path: str) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"peft-qfa train: the config file {path} does not exist.") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"peft-qfa train: the config file {path} is not valid JSON: {err}.") from None
    if not isinstance(data, dict):
        raise ValueError(f"peft-qfa train: the config file {path} must hold a JSON object of options.")
    normalised = {key.replace("-", "_"): value for key, value in data.items()}
    unknown = sorted(set(normalised) - set(_BY_NAME))
    if unknown:
        raise ValueError(f"peft-qfa train: unknown option(s) {unknown} in {path}; known options: {sorted(_BY_NAME)}.")
    return normalised


# ---------------------------------------------------------------------------------------------- data


def _local_files(sources: Sequence[str]) -> list[Path] | None:
    paths = [Path(s).expanduser() for s in sources]
    exists = [p.exists() for p in paths]
    if not any(exists):
        return None
    if not all(exists):
        missing = [str(p) for p, e in zip(paths, exists, strict=True) if not e]
        raise ValueError(
            f"peft-qfa train: --data mixes local files with names that are not files: {missing}. Give local "
            "files only, or a single `datasets` name."
        )
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in TEXT_SUFFIXES + JSON_SUFFIXES)
        else:
            files.append(path)
    if not files:
        raise ValueError(f"peft-qfa train: no {TEXT_SUFFIXES + JSON_SUFFIXES} files in {sources}.")
    return files


def load_texts(sources: Sequence[str], text_column: str = "text", split: str = "train"):
    """A `datasets.Dataset` with the column ``text_column``, from local text/JSON files or a `datasets` name.

    Text files become one row per file (line breaks kept); JSON/JSONL files one row per record.
    """
    from datasets import load_dataset

    files = _local_files(sources)
    if files is None:
        if len(sources) != 1:
            raise ValueError(f"peft-qfa train: give one `datasets` name in --data, got {list(sources)}.")
        dataset = load_dataset(sources[0], split=split)
    else:
        kinds = {"text" if f.suffix in TEXT_SUFFIXES else "json" if f.suffix in JSON_SUFFIXES else f.suffix for f in files}
        if len(kinds) != 1 or not kinds <= {"text", "json"}:
            raise ValueError(
                f"peft-qfa train: --data must be all text ({TEXT_SUFFIXES}) or all JSON ({JSON_SUFFIXES}) files, "
                f"got {sorted(kinds)}."
            )
        kind = kinds.pop()
        extra = {"sample_by": "document"} if kind == "text" else {}
        dataset = load_dataset(kind, data_files=[str(f) for f in files], split="train", **extra)
    if text_column not in dataset.column_names:
        raise ValueError(
            f"peft-qfa train: the data has no column {text_column!r}; its columns are {dataset.column_names}. "
            "Choose one with --text-column."
        )
    return dataset


def hold_back_search_blocks(blocks, search_tokens: int, seq_len: int, as_windows: bool = False):
    """Split off the last whole blocks (``search_tokens`` tokens, at most 10% of the blocks) as search data.

    Returns ``(training blocks, search token ids or None)``: one stream, or with ``as_windows`` the
    blocks ``[n, seq_len]`` as they are (blocks that start with BOS must not be cut again). The search data are text the adapters
    never trained on, so the budget search that later runs on them does not favour memorised text.
    """
    import torch

    if search_tokens < 0:
        raise ValueError(f"peft-qfa train: --search-tokens must be >= 0, got {search_tokens}.")
    count = min(-(-search_tokens // seq_len), len(blocks) // 10)
    if count == 0:
        return blocks, None
    kept = len(blocks) - count
    search_ids = torch.stack([blocks[i]["input_ids"] for i in range(kept, len(blocks))])
    return blocks.select(range(kept)), search_ids if as_windows else search_ids.reshape(-1)


def token_blocks(dataset, tokenizer, seq_len: int, text_column: str = "text", add_bos: bool | None = None):
    """Tokenize every text (an EOS after each), concatenate, and cut into ``seq_len``-token blocks.

    Each block starts with the BOS token when the tokenizer adds one by default or ``add_bos=True``
    (then it holds ``seq_len - 1`` text tokens; :mod:`peft_qfa.windows`).

    Returns a `datasets.Dataset` with ``input_ids`` and ``labels`` (the same ids: causal LM loss).
    """
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    bos = window_bos(tokenizer, add_bos)
    lead, body = ([bos], seq_len - 1) if bos is not None else ([], seq_len)

    def tokenize(batch):
        ids = tokenizer(batch[text_column], add_special_tokens=False, verbose=False)["input_ids"]
        return {"ids": [row + eos for row in ids]}

    def cut(batch):
        stream = [token for row in batch["ids"] for token in row]
        usable = len(stream) // body * body
        blocks = [lead + stream[i : i + body] for i in range(0, usable, body)]
        return {"input_ids": blocks, "labels": [list(b) for b in blocks]}

    tokenized = dataset.map(tokenize, batched=True, remove_columns=dataset.column_names, desc="tokenizing")
    blocks = tokenized.map(cut, batched=True, batch_size=1000, remove_columns=["ids"], desc=f"{seq_len}-token blocks")
    if len(blocks) == 0:
        total = sum(len(ids) for ids in tokenized["ids"])
        raise ValueError(
            f"peft-qfa train: the data holds {total} tokens, less than one --seq-len={seq_len} block; lower "
            "--seq-len or add data."
        )
    return blocks


# ---------------------------------------------------------------------------------------------- the run


def train_supernet(options: Mapping[str, Any] | None = None, **kwargs: Any):
    """Build a supernet, train its QFA adapters over every subnet, and save the supernet folder.

    What ``peft-qfa train`` runs. ``model``, ``data`` and ``output`` are required; every other option
    (the flag names of ``peft-qfa train --help``, with ``_``) has the CLI's default.

    Args:
        options (`dict`, *optional*): options as a mapping (e.g. read from a file); ``kwargs`` win.
        **kwargs: the same options as keywords, e.g. ``steps=200, group_size=32, schedule="sandwich"``.

    Returns:
        `(Trainer, QFASamplerCallback)`: the finished trainer and the sampler callback (its
        ``bit_counts`` say how often each bit-width trained per group).

    Example:

    ```python
    >>> trainer, callback = peft_qfa.train_supernet(model="HuggingFaceTB/SmolLM2-135M", data=["corpus.txt"],
    ...                                             output="supernet/", steps=200)
    ```
    """
    import torch
    from peft import get_peft_model
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        Trainer,
        TrainingArguments,
        default_data_collator,
    )
    from transformers.trainer_callback import DefaultFlowCallback

    from ..atomic import atomic_folder
    from ..checkpoint import save_supernet
    from ..supernet.config import QFAQuantizationConfig
    from ..tuner import QFAConfig
    from .callback import QFASamplerCallback
    from .checks import check_train_options
    from .distillation import QFADistillationTrainer, prepare_teacher
    from .resume import latest_complete_checkpoint

    options = resolve_options({**dict(options or {}), **kwargs})  # the rank and scale defaults are filled below
    check_train_options(options)  # values, paths, scope, targets, rank: before the data or the model
    output = Path(options["output"]).expanduser()
    checkpoints = output / "checkpoints"
    tokenizer = AutoTokenizer.from_pretrained(options["model"])
    blocks = token_blocks(
        load_texts(options["data"], options["text_column"], options["data_split"]),
        tokenizer,
        options["seq_len"],
        options["text_column"],
        options["add_bos"],
    )
    blocks.set_format("torch")
    blocks, search_ids = hold_back_search_blocks(
        blocks, options["search_tokens"], options["seq_len"], window_bos(tokenizer, options["add_bos"]) is not None
    )
    distillation = distillation_config(options)
    teacher = None
    if distillation is not None:  # before the build: a cached teacher frees its float model first
        teacher, blocks = prepare_teacher(
            distillation, options["model"], getattr(torch, options["teacher_dtype"] or options["dtype"]), blocks
        )

    calibration = None
    if options["method"] == "gptq" or options["clip_search"]:  # the clipping search scores output error
        count = min(options["calibration_samples"], len(blocks))
        picks = torch.linspace(0, len(blocks) - 1, count).long().tolist()
        calibration = torch.stack([blocks[i]["input_ids"] for i in picks])
    quantization = QFAQuantizationConfig(
        bits=options["bits"],
        group_size=options["group_size"],
        method=options["method"],
        granularity=options["granularity"],
        calibration=calibration,
        calibration_seq_len=options["seq_len"],
        calibration_samples=options["calibration_samples"],
        clip_search=options["clip_search"],
    )
    supernet = AutoModelForCausalLM.from_pretrained(
        options["model"], quantization_config=quantization, dtype=getattr(torch, options["dtype"])
    )
    if options["r"] is None:
        options["r"], why = default_rank(supernet, options["group_size"])
        print(f"peft-qfa train: {why}.")
    if options["lora_alpha"] is None:
        options["lora_alpha"] = 2.0 * options["r"]
    torch.manual_seed(options["seed"])
    model = get_peft_model(
        supernet,
        QFAConfig(
            r=options["r"], lora_alpha=options["lora_alpha"], target_modules="all-linear", variant=options["variant"]
        ),
    )

    sampler_options = {"subnet": options["fixed_bits"]} if options["schedule"] == "fixed" else {}
    if options["train_bits"] is not None:
        sampler_options["train_bits"] = list(options["train_bits"])
    if options["warmup_steps"]:
        sampler_options["warmup_steps"] = options["warmup_steps"]
    callback = QFASamplerCallback(
        schedule=options["schedule"], seed=options["seed"], period=options["period"], **sampler_options
    )
    save_steps = options["save_steps"]
    args = TrainingArguments(
        output_dir=str(checkpoints),
        max_steps=options["steps"],
        per_device_train_batch_size=options["batch_size"],
        gradient_accumulation_steps=options["grad_accum"],
        learning_rate=options["lr"],
        lr_scheduler_type=options["lr_scheduler"],
        max_grad_norm=options["max_grad_norm"],
        weight_decay=0.0,
        logging_steps=options["logging_steps"],
        save_strategy="steps" if save_steps else "no",
        save_steps=save_steps or 500,
        seed=options["seed"],
        report_to=options["report_to"],
        use_cpu=not torch.cuda.is_available(),
        remove_unused_columns=teacher is None,  # the cached teacher's row index must reach compute_loss
    )
    trainer_cls = Trainer if teacher is None else partial(QFADistillationTrainer, teacher=teacher, distillation=distillation)
    trainer = trainer_cls(
        model=model, args=args, train_dataset=blocks, data_collator=default_data_collator, callbacks=[callback]
    )
    # transformers runs its report_to integrations before user callbacks; run ours right after the flow
    # callback instead, so that TensorBoard/W&B receive qfa/avg_bits with the loss.
    callbacks = trainer.callback_handler.callbacks
    callbacks.remove(callback)
    callbacks.insert(1 + next(i for i, cb in enumerate(callbacks) if isinstance(cb, DefaultFlowCallback)), callback)

    resume = options["resume"]
    if resume == "auto":
        resume, skipped = latest_complete_checkpoint(checkpoints)
        for line in skipped:
            print(f"peft-qfa train: --resume auto {line}.")
        if resume is None:
            raise ValueError(f"peft-qfa train: --resume auto found no complete checkpoint in {checkpoints}.")
        print(f"peft-qfa train: resuming from {resume} (the newest complete checkpoint).")
    trainer.train(resume_from_checkpoint=resume)

    if trainer.is_world_process_zero():
        with atomic_folder(output, "--output") as staging:  # a kill leaves the old output or the new one
            save_supernet(model, staging, search_data=search_ids, tokenizer=tokenizer)
            summary = {
                "sampler": callback.sampler.config(),
                "steps": trainer.state.global_step,
                "bit_counts": {g: {str(b): n for b, n in c.items()} for g, c in callback.bit_counts.items()},
                "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.items()},
            }
            (staging / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        print(f"\nOptimizer steps per bit-width and group ({callback.sampler.name} schedule):")
        print(callback.summary())
        print(f"\nSaved the supernet and its adapters to {output}")
    return trainer, callback


__all__ = [
    "OPTIONS",
    "REQUIRED",
    "SUMMARY_FILE",
    "Option",
    "default_rank",
    "hold_back_search_blocks",
    "load_texts",
    "resolve_options",
    "token_blocks",
    "train_supernet",
]
