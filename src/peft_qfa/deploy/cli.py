"""``peft-qfa export``: one deployable model from a saved supernet, for a budget or an explicit subnet.

    peft-qfa export SUPERNET OUTPUT --budget 3.0 --data heldout.txt
    peft-qfa export SUPERNET OUTPUT --subnet subnet.json       # {"model.layers.0": 4, ...}

Searches (unless ``--subnet`` names the bits), merges the adapters, packs, and saves the model
and the supernet's tokenizer into ``OUTPUT``, ready for ``from_pretrained`` or ``peft-qfa push``.
"""

from __future__ import annotations

import argparse

from ..checkpoint import SEARCH_DATA_NAME, has_saved_search_data
from ..search.cli import add_search_arguments, budget_value, read_data, search_options

HELP = "Materialize one subnet of a saved supernet (search for a budget, merge adapters, pack) into a folder."


def add_arguments(parser: argparse.ArgumentParser, choice_required: bool = True) -> None:
    """The command's arguments; ``choice_required=False`` when a caller checks ``--budget``/``--subnet`` itself."""
    parser.add_argument("supernet", help="Saved supernet folder (with its adapters) or Hub id.")
    parser.add_argument("output", help="Folder for the materialized model.")
    choice = parser.add_mutually_exclusive_group(required=choice_required)
    choice.add_argument("--budget", help="Average bits (3.0, 3.0bits) or size (90MB) of the result.")
    choice.add_argument(
        "--subnet", help="JSON file (or inline JSON) {group: bits}: materialize exactly this subnet."
    )
    add_search_arguments(parser, data_required=False)  # only a --budget needs data


def materialized_model(args: argparse.Namespace):
    """``(model, tokenizer or None)``: the subnet of ``args.supernet`` chosen by ``--budget`` or ``--subnet``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..search.cli_checks import check_export_args
    from . import from_pretrained, materialize

    subnet = check_export_args(args)  # before the (slow) load of the supernet
    if args.budget is not None and not args.data and not has_saved_search_data(args.supernet):  # a Hub id
        raise ValueError(
            "--budget needs --data (texts or a .json task) to score subnets on; "
            f"`{args.supernet}` has no {SEARCH_DATA_NAME} of its own."
        )
    if subnet is not None:
        supernet = AutoModelForCausalLM.from_pretrained(args.supernet)
        model = materialize(supernet, subnet)
    else:
        model = from_pretrained(
            args.supernet,
            budget_value(args.budget),
            read_data(args.data) if args.data else None,  # None: the supernet's saved search data
            tokenizer=args.tokenizer,
            search_options=search_options(args),
        )
        print(model.qfa_search_result.table())
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or args.supernet)
    except (OSError, ValueError):
        tokenizer = None
        print("peft-qfa export: no tokenizer found beside the supernet; copy one into the output folder.")
    return model, tokenizer


def run(args: argparse.Namespace) -> int:
    from ..atomic import atomic_folder

    model, tokenizer = materialized_model(args)
    with atomic_folder(args.output, "OUTPUT") as staging:  # a kill leaves the old folder or the new one
        model.save_pretrained(staging)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
    config = model.config.quantization_config
    bits = sorted(set(config.layer_bits.values()))
    print(f"saved a {len(config.layer_bits)}-layer model with bit-widths {bits} to {args.output}")
    return 0
