"""The ``peft-qfa search`` and ``peft-qfa export`` commands on a saved supernet folder (push: see test_deploy_hub)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa.cli import main as cli
from peft_qfa.search import Budget
from peft_qfa.testing import char_tokenizer

from .deploy_helpers import with_adapters

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good fortune must be in want of a wife. "
    * 3
)


# One generation of two children: enough to run the evolutionary search end to end, in seconds.
FAST_SEARCH = ["--generations", "1", "--children", "2"]


def heldout_args(folder) -> list[str]:
    """``--data`` and its window options for TEXT, written into ``folder``: a few short windows, so fast."""
    (folder / "heldout.txt").write_text(TEXT)
    return ["--data", str(folder / "heldout.txt"), "--max-tokens", "200", "--seq-len", "64"]


def test_search_command_writes_result_and_plot(adapter_folder, tmp_path, capsys):
    search = ["search", str(adapter_folder), "--budget", "2.5", "3.5bits", "--out", str(tmp_path / "out")]
    status = cli([*search, *heldout_args(tmp_path), *FAST_SEARCH])
    assert status == 0
    printed = capsys.readouterr().out
    assert "2.5 bits" in printed and "3.5 bits" in printed and "evaluations" in printed
    result = json.loads((tmp_path / "out" / "search.json").read_text())
    assert [c["budget"] for c in result["choices"]] == ["2.5 bits", "3.5 bits"]
    assert all(c["avg_bits"] <= Budget.parse(c["budget"]).value + 1e-9 for c in result["choices"])
    assert (tmp_path / "out" / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_export_command_for_a_budget_and_for_an_explicit_subnet(adapter_folder, tmp_path):
    by_budget = ["export", str(adapter_folder), str(tmp_path / "by_budget"), "--budget", "3.0"]
    two_stage = ["--strategy", "two-stage", "--n-random", "4", "--n-refine", "2"]
    assert cli([*by_budget, *heldout_args(tmp_path), *two_stage]) == 0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "by_budget")
    assert peft_qfa.search_space(model).cost(peft_qfa.get_subnet(model)).avg_bits <= 3.0 + 1e-9
    assert (tmp_path / "by_budget" / "tokenizer.json").is_file()
    assert model.config.quantization_config.selection["strategy"] == "two-stage"

    subnet = {"model.layers.0": 4, "model.layers.1": 2}
    assert (
        cli(["export", str(adapter_folder), str(tmp_path / "explicit"), "--subnet", json.dumps(subnet)]) == 0
    )
    explicit = AutoModelForCausalLM.from_pretrained(tmp_path / "explicit")
    assert dict(peft_qfa.get_subnet(explicit)) == subnet
    ids = torch.tensor([[5, 6, 7, 8]])
    reference = peft_qfa.materialize(AutoModelForCausalLM.from_pretrained(adapter_folder), subnet)
    with torch.no_grad():
        assert torch.equal(explicit(ids).logits, reference(ids).logits)


def test_export_with_a_budget_but_no_data_is_refused(adapter_folder, tmp_path, capsys):
    assert cli(["export", str(adapter_folder), str(tmp_path / "x"), "--budget", "3.0"]) == 2
    assert "--budget needs --data" in capsys.readouterr().err


def test_search_and_export_default_to_the_search_data_saved_with_the_supernet(
    supernet_dirs, search_ids, tmp_path, capsys
):
    folder = tmp_path / "supernet"
    peft_qfa.save_supernet(with_adapters(supernet_dirs["llama"]), folder, search_data=search_ids)
    char_tokenizer().save_pretrained(folder)
    assert cli(["search", str(folder), "--budget", "3.0", *FAST_SEARCH, "--out", str(tmp_path / "s")]) == 0
    searched = json.loads((tmp_path / "s" / "search.json").read_text())["choices"][0]
    assert cli(["export", str(folder), str(tmp_path / "e"), "--budget", "3.0", *FAST_SEARCH]) == 0
    exported = json.loads((tmp_path / "e" / "config.json").read_text())["quantization_config"]["selection"]
    assert exported["score"] == pytest.approx(searched["score"])  # the same data scored both
    capsys.readouterr()
    assert cli(["search", str(supernet_dirs["llama"]), "--budget", "3.0"]) == 2  # no data given, none saved
    assert "has no qfa_search_data.safetensors" in capsys.readouterr().err
