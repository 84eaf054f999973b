"""Evaluators: held-out loss, multiple-choice accuracy and callables; forward passes only; the cache counts."""

from __future__ import annotations

import json
import math

import pytest
import torch

import peft_qfa
from peft_qfa.search import (
    CallableEvaluator,
    LossEvaluator,
    MultipleChoiceEvaluator,
    make_evaluator,
    search_subnet,
)
from peft_qfa.search.evaluators import load_task
from peft_qfa.testing import bigbench_task, char_tokenizer, perplexity, tiny_token_batches

TASK = {
    "examples": [
        {"input": "2 + 2 =", "target_scores": {"4": 1, "5": 0, "22": 0}},
        {"input": "The sky is ", "target_scores": {"blue": 1, "green": 0}},
        {"input": "Opposite of up:", "target_scores": {"down": 1, "sideways": 0, "up": 0}},
    ]
}


def test_loss_matches_reference_perplexity(supernet):
    stream = tiny_token_batches(1, 70, seed=3)[0]  # 70 tokens: two full windows of 32 and a tail of 6
    evaluator = LossEvaluator(stream, seq_len=32, batch_size=1)
    loss = evaluator.evaluate(supernet, peft_qfa.get_subnet(supernet))
    assert math.exp(loss) == pytest.approx(perplexity(supernet, stream, seq_len=32, batch_size=2), rel=1e-5)
    assert evaluator.n_tokens == 70


def test_scores_are_cached_per_subnet_and_the_model_subnet_restored(supernet, search_ids):
    evaluator = LossEvaluator(search_ids)
    space = peft_qfa.search_space(supernet)
    peft_qfa.set_subnet(supernet, space.uniform(3))
    first = evaluator.evaluate(supernet, space.uniform(2))
    again = evaluator.evaluate(supernet, space.uniform(2))
    other = evaluator.evaluate(supernet, space.uniform(4))
    assert first == again and first != other
    assert evaluator.n_evaluations == 2 and set(evaluator.cache) == {(2,) * 4, (4,) * 4}
    assert peft_qfa.get_subnet(supernet) == space.uniform(3)
    assert not any(p.requires_grad and p.grad is not None for p in supernet.parameters())


def test_texts_with_the_saved_tokenizer(supernet, supernet_dir):
    text = "It is a truth universally acknowledged, that a single man in possession of a good fortune."
    result = search_subnet(supernet, 3.0, [text], strategy="two-stage", n_random=3, n_refine=1, seq_len=16)
    ids = torch.tensor(char_tokenizer()(text, add_special_tokens=False)["input_ids"])
    with peft_qfa.use_subnet(supernet, result.subnet):
        expected = math.log(perplexity(supernet, ids, seq_len=16))
    assert result.score == pytest.approx(expected, rel=1e-5)
    with pytest.raises(
        ValueError, match="LossEvaluator: the evaluation data are texts, so a tokenizer is needed"
    ):
        LossEvaluator([text])


def _choice_loglikelihood(model, tokenizer, prompt, choice):
    """One (input, choice) pair scored alone: no batching, no padding."""
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    choice_ids = tokenizer(("" if prompt[-1].isspace() else " ") + choice, add_special_tokens=False)[
        "input_ids"
    ]
    ids = torch.tensor([prompt_ids + choice_ids])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(ids).logits.float(), -1)[0]
    return sum(logprobs[len(prompt_ids) + i - 1, t].item() for i, t in enumerate(choice_ids))


def test_multiple_choice_accuracy_equals_unbatched_scoring(supernet):
    tokenizer = char_tokenizer()
    evaluator = MultipleChoiceEvaluator(TASK, tokenizer, batch_size=3)  # batches cut across examples
    expected = 0
    for example in TASK["examples"]:
        scores = {
            c: _choice_loglikelihood(supernet, tokenizer, example["input"], c)
            for c in example["target_scores"]
        }
        expected += example["target_scores"][max(scores, key=scores.get)] == 1
    batched = evaluator.choice_loglikelihoods(supernet)
    alone = [
        _choice_loglikelihood(supernet, tokenizer, e["input"], c)
        for e in TASK["examples"]
        for c in e["target_scores"]
    ]
    assert batched.tolist() == pytest.approx(alone, rel=1e-5)
    assert evaluator.evaluate(supernet, peft_qfa.get_subnet(supernet)) == expected / len(TASK["examples"])
    assert evaluator.higher_is_better and evaluator.name == "accuracy"


def test_a_bigbench_file_in_a_shared_folder_loads(tmp_path):
    """The lookup and the file format, on a folder laid out like the shared data (no real data needed)."""
    (tmp_path / "data" / "text" / "austen").mkdir(parents=True)
    (tmp_path / "data" / "bigbench").mkdir()
    task_file = tmp_path / "data" / "bigbench" / "toy.json"
    task_file.write_text(json.dumps({"name": "toy", **TASK}), encoding="utf-8")
    task = bigbench_task("toy", shared_dir=tmp_path)
    assert load_task(task)["examples"] == TASK["examples"] == load_task(task_file)["examples"]
    evaluator = MultipleChoiceEvaluator(task, char_tokenizer(), max_examples=2)
    assert evaluator.n_examples == 2
    with pytest.raises(FileNotFoundError, match=r"No BIG-bench task 'missing' .* available: \['toy'\]"):
        bigbench_task("missing", shared_dir=tmp_path)


@pytest.mark.slow
def test_the_real_bigbench_file_loads():
    """The development data beside the repository (slow: it needs the shared folder, which a clone lacks)."""
    task = bigbench_task("general_knowledge")
    assert len(load_task(task)["examples"]) == len(task["examples"]) > 10
    evaluator = MultipleChoiceEvaluator(task, char_tokenizer(), max_examples=4)
    assert evaluator.n_examples == 4


def test_make_evaluator_dispatch_and_bad_inputs(search_ids):
    assert isinstance(make_evaluator(search_ids), LossEvaluator)
    assert isinstance(make_evaluator(TASK, char_tokenizer()), MultipleChoiceEvaluator)
    custom = make_evaluator(lambda model: 1.0, higher_is_better=True)
    assert isinstance(custom, CallableEvaluator) and custom.higher_is_better
    with pytest.raises(ValueError, match="CallableEvaluator: say whether higher scores are better"):
        make_evaluator(lambda model: 1.0)
    with pytest.raises(ValueError, match="A subnet search needs evaluation data"):
        make_evaluator(None)
    with pytest.raises(ValueError, match="example 0 needs a string `input` and `target_scores`"):
        MultipleChoiceEvaluator({"examples": [{"input": "x", "target_scores": {"a": 1}}]}, char_tokenizer())
    with pytest.raises(ValueError, match="marks no choice as correct"):
        MultipleChoiceEvaluator(
            {"examples": [{"input": "x", "target_scores": {"a": 0, "b": 0}}]}, char_tokenizer()
        )
    with pytest.raises(TypeError, match="token ids must be integers"):
        LossEvaluator([0.5, 1.5, 2.5])


def test_a_callable_evaluator_steers_the_search(supernet):
    """higher_is_better decides the direction: maximising the average bits picks the top subnet that fits."""

    def bits_score(model):
        return peft_qfa.get_subnet(model).avg_bits

    space = peft_qfa.search_space(supernet)
    high = search_subnet(supernet, 3.0, bits_score, higher_is_better=True, generations=1)
    low = search_subnet(supernet, 3.0, bits_score, higher_is_better=False, generations=1)
    assert high.score == pytest.approx(3.0) and space.cost(high.subnet).avg_bits == pytest.approx(3.0)
    assert low.score == pytest.approx(2.0)
