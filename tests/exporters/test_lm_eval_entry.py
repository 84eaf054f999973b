"""``python -m peft_qfa.lm_eval``: imports peft_qfa, then hands every argument to lm-eval's own CLI."""

from __future__ import annotations

import sys
import types

from peft_qfa import lm_eval as entry


def test_arguments_reach_lm_evals_cli_with_the_qfa_quantizer_registered(monkeypatch):
    seen = {}

    def cli_evaluate():
        from transformers.quantizers.auto import AUTO_QUANTIZER_MAPPING

        seen["argv"] = list(sys.argv)
        seen["qfa"] = "qfa" in AUTO_QUANTIZER_MAPPING

    package = types.ModuleType("lm_eval")
    main_module = types.ModuleType("lm_eval.__main__")
    main_module.cli_evaluate = cli_evaluate
    monkeypatch.setitem(sys.modules, "lm_eval", package)
    monkeypatch.setitem(sys.modules, "lm_eval.__main__", main_module)
    monkeypatch.setattr(sys, "argv", ["python"])
    args = ["--model", "hf", "--model_args", "pretrained=model-3bit/", "--tasks", "hellaswag"]
    assert entry.main(args) == 0
    assert seen == {"argv": ["lm_eval", *args], "qfa": True}


def test_without_lm_eval_the_message_names_the_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "lm_eval", None)  # an import of it raises ImportError
    assert entry.main(["--tasks", "x"]) == 2
    assert "pip install lm-eval" in capsys.readouterr().err
