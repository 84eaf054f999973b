"""``peft-qfa push``: upload a materialized model or a supernet folder to the Hub with a generated card.

    peft-qfa push FOLDER REPO_ID [--private] [--commit-message MSG]

``FOLDER`` is what ``peft-qfa export`` (a materialized model) or ``peft-qfa train`` (a supernet and
its adapters) wrote; the card is rendered from the loaded model, so its numbers are the model's own.
A failed upload exits with status 1 and leaves ``FOLDER`` untouched; run the same command again.
"""

from __future__ import annotations

import argparse
import sys

HELP = "Push a materialized model or a supernet (with adapters) to the Hub, with a generated model card."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folder", help="Folder written by `peft-qfa export` or `peft-qfa train`.")
    parser.add_argument("repo_id", help="Hub repository, e.g. me/model-qfa-3bit.")
    parser.add_argument("--private", action="store_true", help="Create the repository as private.")
    parser.add_argument("--commit-message", help="Commit message (default: 'Upload QFA ...').")
    parser.add_argument("--revision", help="Branch to push to.")
    parser.add_argument("--token", help="Hub token (default: the logged-in one).")


def run(args: argparse.Namespace) -> int:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..checkpoint import find_search_data
    from ..search.cli_checks import check_push_args
    from ..supernet.config import qfa_config
    from .hub import HubPushError, push_to_hub

    check_push_args(args)  # before the load
    model = AutoModelForCausalLM.from_pretrained(args.folder)  # a supernet folder brings its adapters along
    search_data = None if qfa_config(model).materialized else find_search_data(model, args.folder)
    try:  # the folder's tokenizer goes along (`peft-qfa train` and `save_supernet` write one)
        tokenizer = AutoTokenizer.from_pretrained(args.folder)
    except (OSError, ValueError):
        tokenizer = None
    try:
        url = push_to_hub(
            model,
            args.repo_id,
            search_data=search_data,  # a supernet's saved search data go along
            tokenizer=tokenizer,
            private=args.private or None,
            commit_message=args.commit_message,
            revision=args.revision,
            token=args.token,
        )
    except HubPushError as err:
        print(f"peft-qfa push: {err}", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0
