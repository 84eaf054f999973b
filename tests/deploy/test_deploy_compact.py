"""Compact deployed files: 16-bit float tensors by default, packed embeddings and heads on request."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM

import peft_qfa
from peft_qfa import QFAQuantizationConfig
from peft_qfa.supernet.packed_embedding import QFAPackedEmbedding, QFAPackedHead
from peft_qfa.supernet.packed_layer import QFAPackedLinear
from peft_qfa.testing import tiny_llama

from .deploy_helpers import GROUP_SIZE, logits, relative_error, with_adapters


@pytest.fixture(scope="module")
def tied_supernet_dir(tmp_path_factory):
    """A tiny llama with a tied head, as an RTN supernet saved with the default (16-bit) deploy dtype."""
    root = tmp_path_factory.mktemp("tied")
    tiny_llama(seed=3, tie_word_embeddings=True).save_pretrained(root / "fp")
    supernet = AutoModelForCausalLM.from_pretrained(
        root / "fp", quantization_config=QFAQuantizationConfig(group_size=GROUP_SIZE, method="rtn")
    )
    supernet.save_pretrained(root / "supernet")
    return root / "supernet"


def _unique_bytes(model) -> int:
    seen, total = set(), 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.untyped_storage().data_ptr() not in seen:
            seen.add(tensor.untyped_storage().data_ptr())
            total += tensor.numel() * tensor.element_size()
    return total


def _buffer_bytes(model) -> int:
    """Non-persistent buffers (rotary frequencies): counted by the cost model, never written."""
    return sum(b.nbytes for b in model.buffers())


def _file_tensors(folder) -> dict[str, torch.Tensor]:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {key: f.get_tensor(key) for key in f.keys()}


def _deploying(model, **settings):
    """``model`` whose supernet config asks for these deploy settings (what the cost model reads)."""
    config = model.get_base_model().config.quantization_config
    for key, value in settings.items():
        setattr(config, key, value)
    return model


def test_packed_embedding_looks_up_rows_and_the_tied_head_reads_the_same_codes():
    torch.manual_seed(0)
    weight = torch.randn(50, 64)
    table = QFAPackedEmbedding.from_float(weight, 8, 32)
    dense = table.quantized().dequantize()
    ids = torch.tensor([[3, 7, 3], [49, 0, 1]])
    assert torch.equal(table(ids), dense[ids])
    steps = table.scales.repeat_interleave(32, dim=1)
    assert ((dense - weight).abs() <= steps / 2 + 1e-6).all()  # round to nearest: half a step at most
    head = QFAPackedHead(tied_to=table)
    hidden = torch.randn(2, 3, 64)
    torch.testing.assert_close(head(hidden), hidden @ dense.T)
    assert dict(head.state_dict()) == {}  # a tied head stores nothing of its own
    with pytest.raises(ValueError, match="choose one of"):
        QFAPackedEmbedding(50, 64, 3, 32)


@pytest.mark.parametrize(
    "settings",
    [{}, {"embedding_bits": 8}, {"embedding_bits": 4}, {"deploy_dtype": "float32", "embedding_bits": 4}],
    ids=["bf16", "bf16-emb8", "bf16-emb4", "fp32-emb4"],
)
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_cost_model_counts_the_compact_files_and_they_reload(
    settings, tied, tied_supernet_dir, supernet_dirs, probe_ids, tmp_path
):
    folder = tied_supernet_dir if tied else supernet_dirs["llama"]
    model = _deploying(with_adapters(folder), **{"deploy_dtype": None, **settings})
    subnet = peft_qfa.search_space(model).uniform(3)
    packed = peft_qfa.materialize(model, subnet)
    expected_dtype = torch.float32 if settings.get("deploy_dtype") == "float32" else torch.bfloat16
    assert packed.dtype == expected_dtype
    assert peft_qfa.search_space(model).cost(subnet).bytes == _unique_bytes(packed)
    if "embedding_bits" in settings:
        assert isinstance(packed.get_input_embeddings(), QFAPackedEmbedding)
        assert packed.get_output_embeddings().tied is tied
    packed.save_pretrained(tmp_path / "packed")
    saved = _file_tensors(tmp_path / "packed")
    guards = sum(t.nbytes for k, t in saved.items() if t.dtype == torch.int32 and t.dim() == 1)
    assert sum(t.nbytes for t in saved.values()) - guards == _unique_bytes(packed) - _buffer_bytes(packed)
    qconfig = json.loads((tmp_path / "packed" / "config.json").read_text())["quantization_config"]
    assert qconfig["deploy_dtype"] == str(expected_dtype).removeprefix("torch.")
    assert qconfig.get("embedding_bits") == settings.get("embedding_bits")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert reloaded.dtype == expected_dtype
    assert torch.equal(logits(reloaded, probe_ids), logits(packed, probe_ids))


def test_sixteen_bit_grids_stay_within_their_rounding_bound(supernet_dirs, probe_ids):
    """A 16-bit scale and zero point are each rounded once: |w16 - w32| <= u * s * (2**b - 1 + 2|z|) with
    u = eps / 2, the unit roundoff; the fp32 files (deploy_dtype="float32") stay exact."""
    model = with_adapters(supernet_dirs["llama"])
    subnet = peft_qfa.search_space(model).uniform(4)
    exact = peft_qfa.materialize(model, subnet, deploy_dtype="float32")
    reference = logits(exact, probe_ids)
    for dtype, logit_bound in (("bfloat16", 2e-2), ("float16", 2e-3)):
        compact = peft_qfa.materialize(model, subnet, deploy_dtype=dtype)
        roundoff = torch.finfo(getattr(torch, dtype)).eps / 2
        for name, layer in exact.named_modules():
            if not isinstance(layer, QFAPackedLinear):
                continue
            w32, q = layer.quantized(), layer.quantized()
            w16 = compact.get_submodule(name).quantized()
            bound = roundoff * q.scales * (2**q.bits - 1 + 2 * q.zeros.abs()) * 1.001 + 1e-7
            error = (w16.dequantize(torch.float32) - w32.dequantize(torch.float32)).abs()
            per_group = error.reshape(*bound.shape, -1).amax(-1)
            assert (per_group <= bound).all(), name
        # the files' only loss: the 16-bit tensors, upcast, against the exact fp32 files
        assert relative_error(logits(torch.nn.Module.float(compact), probe_ids), reference) < logit_bound


def test_save_supernet_writes_our_card_and_the_tokenizer(supernet_dirs, tmp_path):
    from peft_qfa.testing import char_tokenizer

    peft_qfa.save_supernet(with_adapters(supernet_dirs["llama"]), tmp_path / "out", tokenizer=char_tokenizer())
    card = (tmp_path / "out" / "README.md").read_text()
    assert "peft-qfa" in card and "[More Information Needed]" not in card  # not PEFT's blank template
    assert (tmp_path / "out" / "tokenizer.json").is_file()


def test_auto_peft_model_loads_a_saved_supernet_folder(supernet_dirs, probe_ids, tmp_path):
    from peft import AutoPeftModelForCausalLM

    model = with_adapters(supernet_dirs["llama"])
    peft_qfa.save_supernet(model, tmp_path / "out")
    saved = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str((tmp_path / "out").resolve())
    loaded = AutoPeftModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert torch.equal(logits(loaded, probe_ids), logits(model, probe_ids))


def test_loading_without_the_import_says_to_install_and_import_peft_qfa(supernet_dirs, tmp_path):
    """A fresh interpreter that never imports peft_qfa: stock transformers refuses a deployed folder (and a
    supernet folder written by save_supernet) quoting the config's marker; with the import, both load with
    the default attention. (A supernet's own save_pretrained: tests/supernet/test_supernet_save_load.py.)"""
    import subprocess
    import sys

    model = with_adapters(supernet_dirs["llama"])
    peft_qfa.save_supernet(model, tmp_path / "supernet")
    peft_qfa.materialize(model, peft_qfa.search_space(model).uniform(3)).save_pretrained(tmp_path / "packed")
    for folder in ("supernet", "packed"):
        script = (
            "import sys\nfrom transformers import AutoModelForCausalLM\n"
            f"AutoModelForCausalLM.from_pretrained({str(tmp_path / folder)!r})\n"
            "assert 'peft_qfa' not in sys.modules\n"
        )
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert run.returncode != 0
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("ValueError") and "pip install peft-qfa, then import peft_qfa" in last, last
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path / folder)
        assert loaded.config._attn_implementation in ("sdpa", "eager")


def test_a_byte_budget_packs_the_embedding_when_it_needs_to(tied_supernet_dir, search_ids, tmp_path):
    """With embedding_bits="search" the embedding's precision is one more choice of a byte budget: below the
    cheapest subnet with a 16-bit embedding only the packed ones fit, and the search takes one."""
    from peft_qfa.supernet.budget import feasible_range

    folder = tmp_path / "supernet"
    peft_qfa.save_supernet(with_adapters(tied_supernet_dir), folder, search_data=search_ids)
    probe = AutoModelForCausalLM.from_pretrained(folder)
    lows = {}
    for bits in (None, 8):
        probe.config.quantization_config.embedding_bits = bits
        lows[bits] = feasible_range(peft_qfa.search_space(probe), "bytes")[0]
    assert lows[8] < lows[None]
    budget = int((lows[None] + lows[8]) / 2)
    model = AutoModelForCausalLM.from_pretrained(
        folder, quantization_config=QFAQuantizationConfig(budget=f"{budget}B", embedding_bits="search")
    )
    assert isinstance(model.get_input_embeddings(), QFAPackedEmbedding)
    assert model.get_output_embeddings().tied
    chosen = model.config.quantization_config
    assert chosen.embedding_bits in (4, 8) and set(chosen.selection["embedding_bits"]["scores"]) == {"8", "4"}
    assert peft_qfa.search_space(model).cost(peft_qfa.get_subnet(model)).bytes <= budget
    model.save_pretrained(tmp_path / "packed")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "packed")
    assert torch.equal(logits(reloaded, search_ids), logits(model, search_ids))
