"""``peft-qfa export``: one deployable model from a saved supernet, for a budget or an explicit subnet.

    peft-qfa export SUPERNET OUTPUT --budget 3.0 --data heldout.txt
    peft-qfa export SUPERNET OUTPUT --subnet subnet.json       # {"model.layers.0": 4, ...}

Searches (unless ``--subnet`` names the bits), merges the adapters, packs, and saves the model
and the supernet's tokenizer into ``OUTPUT``, ready for ``from_pretrained`` or ``peft-qfa push``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..checkpoint import SEARCH_DATA_NAME, has_saved_search_data
from ..search.cli import add_search_arguments, budget_value, read_data, search_options

HELP = "Materialize one subnet of a saved supernet (search for a budget, merge adapters, pack) into a folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("supernet", help="Saved supernet folder (with its adapters) or Hub id.")
    parser.add_argument("output", help="Folder for the materialized model.")
    choice = parser.add_mutually_exclusive_group(required=True)
    choice.add_argument("--budget", help="Average bits (3.0, 3.0bits) or size (90MB) of the result.")
    choice.add_argument(
        "--subnet", help="JSON file (or inline JSON) {group: bits}: materialize exactly this subnet."
    )
    add_search_arguments(parser, data_required=False)  # only a --budget needs data


def _explicit_subnet(text: str) -> dict:
    path = Path(text)
    data = json.loads(path.read_text() if path.is_file() else text)
    return data.get("bits", data)


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import from_pretrained, materialize

    if args.subnet:
        supernet = AutoModelForCausalLM.from_pretrained(args.supernet)
        model = materialize(supernet, _explicit_subnet(args.subnet))
    else:
        if not args.data and not has_saved_search_data(args.supernet):
            print(
                "peft-qfa export: --budget needs --data (texts or a .json task) to score subnets on; "
                f"`{args.supernet}` has no {SEARCH_DATA_NAME} of its own.",
                file=sys.stderr,
            )
            return 2
        model = from_pretrained(
            args.supernet,
            budget_value(args.budget),
            read_data(args.data) if args.data else None,  # None: the supernet's saved search data
            tokenizer=args.tokenizer,
            search_options=search_options(args),
        )
        print(model.qfa_search_result.table())
    model.save_pretrained(args.output)
    try:
        AutoTokenizer.from_pretrained(args.tokenizer or args.supernet).save_pretrained(args.output)
    except (OSError, ValueError):
        print("peft-qfa export: no tokenizer found beside the supernet; copy one into the output folder.")
    config = model.config.quantization_config
    bits = sorted(set(config.layer_bits.values()))
    print(f"saved a {len(config.layer_bits)}-layer model with bit-widths {bits} to {args.output}")
    return 0
