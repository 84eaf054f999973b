"""``from_pretrained`` with a budget: search + materialize of a saved supernet folder (supernet + adapters)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFAPackedLinear, QFAQuantizationConfig
from peft_qfa.search import Budget
from peft_qfa.supernet import budget as budget_module
from peft_qfa.supernet.layer import find_bit_layers
from peft_qfa.supernet.space import SearchSpace

from .deploy_helpers import logits, relative_error, with_adapters

FAST = {"generations": 1, "children": 3}


def test_short_form_searches_merges_and_packs(adapter_folder, supernet_dirs, search_ids, probe_ids):
    model = peft_qfa.from_pretrained(adapter_folder, budget=3.0, eval_data=search_ids, search_options=FAST)
    assert all(type(layer) is QFAPackedLinear for layer in find_bit_layers(model).values())
    assert not hasattr(model, "peft_config") and not model._hf_peft_config_loaded
    chosen = peft_qfa.get_subnet(model)
    result = model.qfa_search_result
    assert dict(chosen) == dict(result.subnet) and result.strategy == "sensitivity-knapsack"
    assert Budget("bits", 3.0).fits(peft_qfa.search_space(model).cost(chosen))
    # the same adapters, merged by materialize() from the PEFT model, give the same model
    reference = peft_qfa.materialize(with_adapters(supernet_dirs["llama"]), dict(chosen))
    assert relative_error(logits(model, probe_ids), logits(reference, probe_ids)) < 1e-6
    selection = model.config.quantization_config.selection
    assert selection["budget"] == "3 bits" and selection["metric"] == "loss"
    assert selection["score"] == pytest.approx(result.score)


@pytest.mark.parametrize("form", ["short", "transformers"])
def test_the_budget_is_parsed_once_and_the_space_built_once(adapter_folder, search_ids, monkeypatch, form):
    """Along ``from_pretrained(..., budget=...)`` the budget is parsed once where it enters, checked once
    against a space built once; the typed Budget and that SearchSpace are passed down."""
    parsed, spaces, checks = [], [], []
    parse, from_model, check = Budget.parse.__func__, SearchSpace.from_model.__func__, budget_module.check_feasible

    def counting_parse(cls, budget):
        parsed.append(budget)
        return parse(cls, budget)

    def counting_from_model(cls, model, granularity=None):
        spaces.append(type(model).__name__)
        return from_model(cls, model, granularity)

    monkeypatch.setattr(Budget, "parse", classmethod(counting_parse))
    monkeypatch.setattr(SearchSpace, "from_model", classmethod(counting_from_model))
    for module in ("peft_qfa.deploy.loading", "peft_qfa.supernet.budget"):
        monkeypatch.setattr(f"{module}.check_feasible", lambda *a: (checks.append(a), check(*a))[1])
    if form == "short":
        model = peft_qfa.from_pretrained(adapter_folder, budget="3.0bits", eval_data=search_ids, search_options=FAST)
    else:
        config = QFAQuantizationConfig(budget="3.0bits", search_data=search_ids, search_options=FAST)
        model = AutoModelForCausalLM.from_pretrained(adapter_folder, quantization_config=config)
    assert all(type(layer) is QFAPackedLinear for layer in find_bit_layers(model).values())
    assert parsed == ["3.0bits"]
    assert len(spaces) == 1 and len(checks) == 1


def test_transformers_form_with_a_byte_budget(adapter_folder, search_ids, tmp_path):
    supernet = AutoModelForCausalLM.from_pretrained(adapter_folder)  # transformers loads the adapters too
    space = peft_qfa.search_space(supernet)
    low, high = space.cost(space.uniform(2)).bytes, space.cost(space.uniform(4)).bytes
    budget = f"{(low + high) / 2 / 1e3:.1f}kB"
    with pytest.warns(UserWarning, match="loading attributes"):
        model = AutoModelForCausalLM.from_pretrained(
            adapter_folder,
            quantization_config=QFAQuantizationConfig(
                budget=budget,
                search_data=search_ids,
                search_options={"strategy": "two-stage", "n_random": 4, "n_refine": 2},
            ),
        )
    cost = peft_qfa.search_space(model).cost(peft_qfa.get_subnet(model))
    assert cost.bytes <= Budget.parse(budget).value
    assert model.qfa_search_result.strategy == "two-stage"
    model.save_pretrained(tmp_path / "deployed")
    saved = json.loads((tmp_path / "deployed" / "config.json").read_text())["quantization_config"]
    assert "search_data" not in saved and "search_options" not in saved and "budget" not in saved
    assert saved["selection"]["budget"] == str(Budget.parse(budget))
    # the adapters came in through transformers' load_adapter: the weights must still be saved under their own names
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "deployed")
    ids = torch.tensor([[3, 1, 4, 1, 5, 9]])
    assert torch.equal(logits(reloaded, ids), logits(model, ids))


def test_folder_without_adapters_is_refused_unless_asked(supernet_dirs, search_ids):
    with pytest.raises(
        ValueError, match=r"holds no QFA adapters .* search_options=\{'require_adapters': False\}"
    ):
        peft_qfa.from_pretrained(supernet_dirs["llama"], budget=3.0, eval_data=search_ids)
    model = peft_qfa.from_pretrained(
        supernet_dirs["llama"],
        budget=3.0,
        eval_data=search_ids,
        search_options={"require_adapters": False, **FAST},
    )
    assert all(type(layer) is QFAPackedLinear for layer in find_bit_layers(model).values())


@pytest.mark.parametrize(
    "budget, error, message",
    [
        (
            1.5,
            ValueError,
            r"1.5 bits is below the smallest subnet of this supernet \(2 bits\); feasible bits budgets "
            r"range from 2 bits .* to 4 bits",
        ),
        (4.5, ValueError, r"above the largest subnet .* range from 2 bits"),
        ("2.5GB", ValueError, r"2.5 GB is above the largest subnet .* feasible bytes budgets range from"),
        ("three bits", ValueError, r"cannot read `budget='three bits'`"),
        ([2.5, 3.0], TypeError, r"`budget` must be one bit or byte budget"),
    ],
)
def test_bad_budgets_fail_before_any_search(adapter_folder, search_ids, budget, error, message):
    with pytest.raises(error, match=message):
        peft_qfa.from_pretrained(adapter_folder, budget=budget, eval_data=search_ids)


def test_missing_search_data_and_budget_on_a_deployed_model(adapter_folder, search_ids, tmp_path):
    with pytest.raises(
        ValueError, match=r"searches a subnet, which needs data to score subnets on: pass `search_data=`"
    ):
        AutoModelForCausalLM.from_pretrained(
            adapter_folder, quantization_config=QFAQuantizationConfig(budget=3.0)
        )
    deployed = peft_qfa.from_pretrained(adapter_folder, budget=2.5, eval_data=search_ids, search_options=FAST)
    deployed.save_pretrained(tmp_path / "deployed")
    with pytest.raises(
        ValueError, match="already a materialized QFA subnet; a `budget` applies only when loading a supernet"
    ):
        AutoModelForCausalLM.from_pretrained(
            tmp_path / "deployed",
            quantization_config=QFAQuantizationConfig(budget=3.0, search_data=search_ids),
        )


def test_a_loaded_supernet_keeps_working_after_a_budget_load(adapter_folder, search_ids, probe_ids):
    """The one-shot hook on load_adapter is gone after use: a plain load still gets a supernet with adapters."""
    peft_qfa.from_pretrained(adapter_folder, budget=3.0, eval_data=search_ids, search_options=FAST)
    supernet = AutoModelForCausalLM.from_pretrained(adapter_folder)
    layers = find_bit_layers(supernet)
    assert all(layer.candidate_bits == (2, 3, 4) for layer in layers.values())
    assert "load_adapter" not in vars(supernet)
    assert torch.isfinite(logits(supernet, probe_ids)).all()


def test_a_budget_alone_scores_on_the_search_data_saved_with_the_supernet(supernet_dirs, search_ids, probe_ids, tmp_path):
    folder = tmp_path / "supernet_with_search_data"
    peft_qfa.save_supernet(with_adapters(supernet_dirs["llama"]), folder, search_data=search_ids)
    config = QFAQuantizationConfig(budget=3.0, search_options=FAST)
    with pytest.warns(UserWarning, match="loading attributes"):
        alone = AutoModelForCausalLM.from_pretrained(folder, quantization_config=config)
    assert config.search_data is None  # the saved data were used, not written into the caller's config
    explicit = peft_qfa.from_pretrained(folder, budget=3.0, eval_data=search_ids, search_options=FAST)
    assert dict(peft_qfa.get_subnet(alone)) == dict(peft_qfa.get_subnet(explicit))
    assert alone.qfa_search_result.score == explicit.qfa_search_result.score
    assert torch.equal(logits(alone, probe_ids), logits(explicit, probe_ids))
    with pytest.raises(ValueError, match="expected token ids, a 1-D or 2-D integer tensor"):
        peft_qfa.save_supernet(with_adapters(supernet_dirs["llama"]), tmp_path / "bad", search_data=torch.rand(8))
    assert not (tmp_path / "bad").exists()  # refused before anything was written
