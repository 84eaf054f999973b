"""``peft-qfa export``: a subnet as our own folder (default), an HQQ folder or one GGUF file.

    peft-qfa export SUPERNET OUTPUT --budget 3.0 --data heldout.txt               # native folder
    peft-qfa export SUPERNET model.gguf --subnet subnet.json --format gguf        # search/merge/pack, then GGUF
    peft-qfa export MATERIALIZED model-hqq/ --format hqq                          # convert a saved subnet
    peft-qfa export MATERIALIZED model-q3k.gguf --format gguf --gguf-type Q3_K_M  # lossy, via llama.cpp

A supernet needs ``--budget`` or ``--subnet``; a materialized folder (what a native export wrote)
is converted as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..deploy import cli as deploy_cli
from .api import FORMATS

HELP = (
    "Materialize one subnet of a saved supernet (search for a budget, merge adapters, pack) into a folder, "
    "or export a subnet as HQQ or GGUF (--format)."
)
GGUF_TYPES_HELP = "Q4_1 (default, exact), F16 (dequantized), or a lossy llama.cpp K-quant: Q2_K, Q3_K_S/M/L, Q4_K_S/M, Q5_K_M, Q6_K."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    deploy_cli.add_arguments(parser, choice_required=False)
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="native",
        help="native: our folder (load after `import peft_qfa`); hqq: transformers' HQQ layout; gguf: one llama.cpp file.",
    )
    parser.add_argument("--gguf-type", default="Q4_1", help=GGUF_TYPES_HELP)
    parser.add_argument(
        "--gguf-pre", default=None, help="llama.cpp pre-tokenizer name (guessed for SmolLM2 and Qwen2)."
    )


def is_materialized_folder(path: str) -> bool:
    """Whether ``path`` is a folder holding a materialized subnet (its config has ``layer_bits``)."""
    config = Path(path).expanduser() / "config.json"
    if not config.is_file():
        return False
    quantization = json.loads(config.read_text(encoding="utf-8")).get("quantization_config") or {}
    return quantization.get("quant_method") == "qfa" and bool(quantization.get("layer_bits"))


def run(args: argparse.Namespace) -> int:
    from .api import export, gguf_types
    from .source import load_materialized

    if args.format == "gguf" and args.gguf_type not in gguf_types():
        raise ValueError(f"--gguf-type must be one of {', '.join(gguf_types())}; got {args.gguf_type!r}.")
    if args.format == "gguf" and Path(args.output).suffix != ".gguf":
        raise ValueError(f"OUTPUT of --format gguf is one file ending in .gguf; got `{args.output}`.")
    if is_materialized_folder(args.supernet):
        if args.budget is not None or args.subnet is not None:
            raise ValueError(
                f"`{args.supernet}` is already a materialized subnet; drop --budget/--subnet (they choose a subnet of a supernet)."
            )
        if args.format == "native":
            raise ValueError(
                f"`{args.supernet}` is already a native folder; give --format hqq or --format gguf."
            )
        model, tokenizer = load_materialized(args.supernet), source_tokenizer(args)
    else:
        if args.budget is None and args.subnet is None:
            raise ValueError("one of --budget or --subnet is required to choose a subnet of the supernet.")
        if args.format == "native":
            return deploy_cli.run(args)
        model, tokenizer = deploy_cli.materialized_model(args)
    if args.format == "gguf" and tokenizer is not None:
        from .gguf_tokenizer import unsupported_reason

        reason = unsupported_reason(tokenizer)
        if reason is not None:
            print(f"peft-qfa export: the GGUF file carries no tokenizer: {reason}.")
            tokenizer = None
    written = export(
        model,
        args.output,
        args.format,
        tokenizer=tokenizer,
        gguf_type=args.gguf_type,
        tokenizer_pre=args.gguf_pre,
        progress=True,
    )
    bits = sorted(set(model.config.quantization_config.layer_bits.values()))
    kind = f"{args.format} ({args.gguf_type})" if args.format == "gguf" else args.format
    print(f"exported a subnet with bit-widths {bits} as {kind} to {written}")
    return 0


def source_tokenizer(args: argparse.Namespace):
    """The tokenizer of ``--tokenizer`` or the one beside the source folder (``None`` when there is none)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(args.tokenizer or args.supernet)
    except (OSError, ValueError):
        print("peft-qfa export: no tokenizer found beside the model; the export carries none.")
        return None
