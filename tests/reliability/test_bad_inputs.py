"""Every bad input of the table in ``tests/bad_inputs.py`` is a clear error before any work.

API and file cases must raise an error naming the argument or field; CLI cases must exit with
status 2 and one stderr line naming the flag. In every case nothing is written and the saved
folders are untouched (``bad_inputs.judge``). ``benchmarks/bad_inputs.py`` prints the count table.
"""

from __future__ import annotations

import pytest

from peft_qfa.testing import single_torch_thread

from .bad_inputs import all_cases, build_fixtures, cli, judge

CASES = all_cases()


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    with single_torch_thread():
        yield build_fixtures(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_a_clear_error_and_writes_nothing(case, fx, monkeypatch):
    monkeypatch.chdir(fx["root"])
    with single_torch_thread():
        verdict, message = judge(case, fx)
    assert verdict == "clear", f"{case.surface}: {case.name}: {verdict}: {message}"


def test_debug_shows_the_traceback_instead_of_the_line(fx):
    from peft_qfa.cli import main

    missing = str(fx["root"] / "nope")
    assert cli("search", missing, "--budget", "3").rc == 2
    with pytest.raises(FileNotFoundError, match="SUPERNET .* no such folder"):
        main(["search", missing, "--budget", "3", "--debug"])


def test_loading_adapters_onto_another_supernet_needs_the_explicit_override(fx):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    import peft_qfa

    other = AutoModelForCausalLM.from_pretrained(fx["other_supernet"])
    with pytest.raises(ValueError, match="trained on another supernet"):
        PeftModel.from_pretrained(other, fx["supernet"])
    with peft_qfa.allow_other_supernet():
        loaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(fx["other_supernet"]), fx["supernet"])
    assert any(".qfa_A." in name for name, _ in loaded.named_parameters())
    # on its own supernet the recorded fingerprint matches
    own = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(fx["bare_supernet"]), fx["supernet"])
    assert own.peft_config["default"].supernet_fingerprint == peft_qfa.supernet.integrity.supernet_fingerprint(own)
