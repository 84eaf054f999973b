"""Build a 2/3/4-bit QFA supernet, switch subnets, save it and load it back.

    PYTHONPATH=src python examples/build_supernet.py            # a tiny random Llama, a few seconds
    PYTHONPATH=src python examples/build_supernet.py --smollm2  # SmolLM2-135M-Instruct (minutes on 2 cores)

The tiny run calibrates on random token ids; the SmolLM2 run calibrates on English text that every
CPython ships (the reference topics behind ``help()``, in ``pydoc_data.topics``). Any list of
strings, a datasets.Dataset with a text column or a LongTensor [n, seq] of token ids works the same way.
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import peft_qfa  # registers the "qfa" quantization method with transformers
from peft_qfa import QFAQuantizationConfig


def source_and_calibration(smollm2: bool, folder: str):
    if smollm2:
        from pydoc_data.topics import topics

        from peft_qfa.testing import smollm2_path

        return str(smollm2_path()), ["\n\n".join(topics.values())], 32, 512
    from peft_qfa.testing import tiny_llama, tiny_token_batches

    tiny_llama(seed=0).save_pretrained(folder)
    return folder, tiny_token_batches(16, 64, seed=0), 16, 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--smollm2", action="store_true", help="use SmolLM2-135M-Instruct instead of a tiny model"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as workdir:
        path, calibration, samples, seq_len = source_and_calibration(args.smollm2, f"{workdir}/base")

        # 1. the supernet: every target linear keeps frozen 2-, 3- and 4-bit GPTQ copies of its weight
        config = QFAQuantizationConfig(
            bits=(2, 3, 4),
            group_size=64,
            method="gptq",
            calibration=calibration,
            calibration_samples=samples,
            calibration_seq_len=seq_len,
        )
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=config)
        space = peft_qfa.search_space(model)
        print(space, f"- supernet: {space.supernet_bytes() / 2**20:.1f} MiB")

        # 2. subnets: one bit-width per decoder block
        ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
        if args.smollm2:
            ids = AutoTokenizer.from_pretrained(path)(
                "It is a truth universally acknowledged", return_tensors="pt"
            ).input_ids
        for subnet in (space.uniform(2), space.uniform(4), space.sample(seed=0)):
            peft_qfa.set_subnet(model, subnet)
            with torch.no_grad():
                loss = model(ids, labels=ids).loss.item()
            print(f"{subnet.cost()}  loss on the probe: {loss:.3f}")

        # 3. save every bit-width; reload without recalibrating
        model.save_pretrained(f"{workdir}/supernet")
        reloaded = AutoModelForCausalLM.from_pretrained(f"{workdir}/supernet")
        peft_qfa.set_subnet(reloaded, space.sample(seed=0))
        with torch.no_grad():
            same = torch.equal(reloaded(ids).logits, model(ids).logits)
        print(f"reloaded supernet gives identical outputs: {same}")


if __name__ == "__main__":
    main()
