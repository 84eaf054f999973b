"""Every bad input of the table in ``tests/bad_inputs.py`` is a clear error before any work.

API and file cases must raise an error naming the argument or field; CLI cases must exit with
status 2 and one stderr line naming the flag. In every case nothing is written and the saved
folders are untouched (``bad_inputs.judge``). ``benchmarks/bad_inputs.py`` prints the count table.
"""

from __future__ import annotations

import pytest

from peft_qfa.testing import single_torch_thread

from .bad_inputs import all_cases, build_fixtures, judge

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
