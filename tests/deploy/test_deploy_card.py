"""Model cards: rendered from the templates, naming the true bits per group, the search and the load snippet."""

from __future__ import annotations

import re

import pytest

import peft_qfa
from peft_qfa.deploy.model_card import render_materialized_card, render_supernet_card, write_model_card
from peft_qfa.supernet.layer import find_bit_layers

from .deploy_helpers import with_adapters


def group_rows(card: str) -> dict[str, int]:
    return {m[1]: int(m[2]) for m in re.finditer(r"^\| `([^`]+)` \| (\d) \| \d+ \|$", card, re.M)}


def test_card_of_a_searched_subnet_names_its_true_bits(adapter_folder, search_ids, tmp_path):
    model = peft_qfa.from_pretrained(
        adapter_folder, budget=3.0, eval_data=search_ids, search_options={"generations": 1, "children": 3}
    )
    path = write_model_card(model, tmp_path, "me/tiny-qfa-3bit")
    card = open(path, encoding="utf-8").read()
    truth = dict(peft_qfa.get_subnet(model))
    assert group_rows(card) == truth and len(truth) == 2
    layer_bits = {name: layer.bits for name, layer in find_bit_layers(model).items()}
    assert all(bits == truth[name.rsplit(".", 2)[0]] for name, bits in layer_bits.items())  # group = block
    cost = peft_qfa.search_space(model).cost(peft_qfa.get_subnet(model))
    assert f"| average bits (weighted by parameters) | {cost.avg_bits:.3f} |" in card
    selection = model.config.quantization_config.selection
    assert "Strategy `sensitivity-knapsack`, scored by **loss**" in card
    assert (
        f"**{selection['score']:.4f}" in card
        and f"after {selection['n_evaluations']} subnet evaluations" in card
    )
    assert "| budget | 3 bits |" in card
    assert "![Pareto front of the search" in card and (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    assert 'AutoModelForCausalLM.from_pretrained("me/tiny-qfa-3bit")' in card
    assert card.startswith("---\nlibrary_name: transformers\n") and "- peft-qfa" in card
    assert "base_model:" not in card  # the source is a local folder, not a Hub model id
    assert "$" not in card.replace("$ ", "")  # every placeholder was filled


def test_card_of_an_explicit_subnet_and_of_a_supernet(supernet_dirs):
    model = with_adapters(supernet_dirs["llama"])
    space = peft_qfa.search_space(model)
    subnet = space.subnet({space.group_names[0]: 4, space.group_names[1]: 2})
    card = render_materialized_card(peft_qfa.materialize(model, subnet), "me/explicit")
    assert group_rows(card) == dict(subnet)
    assert (
        "The subnet was given explicitly (no search)." in card and "| selected by | explicit subnet |" in card
    )
    supernet_card = render_supernet_card(model, "me/tiny-supernet")
    assert "| candidate bit-widths | 2/3/4 |" in supernet_card
    assert "| search space | 2 block groups, 14 quantized linear layers |" in supernet_card
    assert "`default` (variant=qa-lora, r=2, alpha=0.5, 2,112 trainable parameters per bit-width)" in supernet_card
    assert 'peft_qfa.from_pretrained("me/tiny-supernet", budget=3.0' in supernet_card
    with pytest.raises(ValueError, match="the model is a supernet, not a materialized subnet"):
        render_materialized_card(model, "me/x")
