"""``python -m peft_qfa.lm_eval ARGS``: lm-evaluation-harness's own command line, with peft_qfa imported first.

transformers learns the ``"qfa"`` quantization method only when ``peft_qfa`` is imported, so a plain
``lm_eval --model hf --model_args pretrained=<native QFA folder>`` stops at "Unknown quantization type".
This entry point imports us and hands every argument, unchanged, to lm-eval's CLI:

    python -m peft_qfa.lm_eval --model hf --model_args pretrained=model-3bit/ --tasks hellaswag --device cpu

An HQQ or GGUF export needs no peft_qfa at all (see docs/export.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

LM_EVAL_INSTALL = "pip install lm-eval"


def main(argv: Sequence[str] | None = None) -> int:
    import peft_qfa  # noqa: F401  (registers the "qfa" quantizer and the QFA PEFT type)

    try:
        from lm_eval.__main__ import cli_evaluate
    except ImportError as err:
        print(
            f"python -m peft_qfa.lm_eval needs lm-evaluation-harness: {LM_EVAL_INSTALL} ({err})",
            file=sys.stderr,
        )
        return 2
    sys.argv = ["lm_eval", *(sys.argv[1:] if argv is None else argv)]
    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
