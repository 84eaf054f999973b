"""``QFAQuantizationConfig``: the ``"qfa"`` transformers quantization method's settings.

Passing it to ``from_pretrained`` turns every target ``nn.Linear`` into a
:class:`~peft_qfa.supernet.layer.QFALinear` supernet layer; ``save_pretrained`` writes it into
``config.json`` so that the supernet reloads without recalibrating. The calibration data and the
tokenizer are inputs of the build, not properties of the result: they are never serialized.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from transformers.quantizers.auto import register_quantization_config
from transformers.utils.quantization_config import QuantizationConfigMixin

from .._compat import accept_loading_attributes
from ..quant import METHODS, SUPPORTED_BITS
from ..quant.clipping import DEFAULT_CLIP_RATIOS, check_clip_ratios
from .budget import Budget
from .packed_embedding import EMBEDDING_BITS, EMBEDDING_SEARCH
from .space import GRANULARITIES

QUANT_METHOD = "qfa"
DEPLOY_DTYPES = ("auto", "float32", "float16", "bfloat16")
CONFIG_VERSION = 1
"""Bumped whenever the meaning of a saved field changes; a saved config from a newer version is refused."""

NOT_SERIALIZED = ("calibration", "tokenizer", "search_data", "search_options")
LOADING_ATTRIBUTES = ("budget", "subnet", "search_data", "search_options", "tokenizer", "deploy_dtype", "embedding_bits")
"""Options of a ``from_pretrained(saved_supernet, quantization_config=...)`` call that apply at load time."""
"""Build inputs: texts, datasets, tensors and tokenizers must never land in ``config.json``.
(``search_data`` / ``search_options``: the budget search's inputs, see :mod:`peft_qfa.deploy.loading`.)"""

def parse_budget(budget: float | int | str | Mapping[str, int]) -> tuple[str, float | dict[str, int]]:
    """Deprecated: use :meth:`peft_qfa.Budget.parse` (and ``QFAQuantizationConfig(subnet=...)`` for an
    explicit subnet). Returns ``("bits", avg_bits)``, ``("bytes", n_bytes)`` or ``("subnet", {group: bits})``."""
    warnings.warn(
        "peft_qfa.supernet.config.parse_budget is deprecated; use peft_qfa.Budget.parse(budget) (an explicit "
        "{group: bits} subnet is QFAQuantizationConfig(subnet=...)).",
        FutureWarning,
        stacklevel=2,
    )
    if isinstance(budget, Mapping):
        return "subnet", _checked_subnet(budget)
    parsed = Budget.parse(budget)
    return parsed.kind, parsed.value


def _checked_subnet(subnet: Mapping[str, int]) -> dict[str, int]:
    """An explicit ``{group: bits}`` subnet as a dict; its names are checked against the model at load."""
    if not isinstance(subnet, Mapping):
        raise TypeError(
            f"QFAQuantizationConfig: `subnet` must map group names to bits, like {{'model.layers.0': 3}}, got "
            f"{type(subnet).__name__}."
        )
    if not subnet:
        raise ValueError("QFAQuantizationConfig: an explicit `subnet={}` must name at least one group.")
    bad = {k: v for k, v in subnet.items() if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int)}
    if bad:
        raise TypeError(f"QFAQuantizationConfig: a subnet maps group names to int bits; got {bad}.")
    return dict(subnet)


@register_quantization_config(QUANT_METHOD)
class QFAQuantizationConfig(QuantizationConfigMixin):
    """Settings of a QFA supernet: which linears, which bit-widths, how they are quantized.

    Args:
        bits (`tuple[int, ...]`, *optional*, defaults to `(2, 3, 4)`):
            Candidate bit-widths; every target linear keeps one frozen copy per bit-width.
        group_size (`int`, *optional*, defaults to 64):
            Input columns per quantization group; must divide every target's ``in_features``.
        method (`str`, *optional*, defaults to `"gptq"`):
            ``"gptq"`` (needs ``calibration``; one Hessian per layer serves every bit-width) or
            ``"rtn"`` (round-to-nearest, no data).
        calibration (*optional*):
            GPTQ calibration data: a string or list of strings (tokenized with ``tokenizer``, or with
            the tokenizer saved next to the model), a ``datasets.Dataset`` with a text column, or a
            ``torch.LongTensor [n, seq]`` of token ids used as given. Never serialized.
        tokenizer (*optional*):
            Tokenizer (or its path) for text calibration; defaults to ``AutoTokenizer.from_pretrained``
            on the model's own path. Never serialized.
        calibration_seq_len (`int`, *optional*, defaults to 512):
            Tokens per calibration window (texts are concatenated and cut into windows).
        calibration_samples (`int`, *optional*, defaults to 128):
            Number of windows taken from the texts (spread evenly over them).
        calibration_add_bos (`bool`, *optional*):
            Whether windows cut from calibration texts start with the tokenizer's BOS token; ``None``
            (the default) follows the tokenizer (:mod:`peft_qfa.windows`). Token ids are used as given.
        target_modules (`str` or `list[str]`, *optional*, defaults to `"all-linear"`):
            As in PEFT: ``"all-linear"`` (every ``nn.Linear`` but the output head), a list of module
            name suffixes (``["q_proj", "v_proj"]``) or a regex matched against full module names.
            An explicit list or regex may name the head (``"lm_head"``) unless it is tied to the
            input embeddings.
        modules_to_not_convert (`list[str]`, *optional*):
            Modules kept in full precision even if targeted (transformers' matching rules: a name
            prefix, a regex or a suffix).
        granularity (`str`, *optional*, defaults to `"block"`):
            Unit of the search space: ``"block"`` (every linear of a decoder block shares one
            bit-width, the paper's setting) or ``"layer"``.
        damp_percent (`float`, *optional*, defaults to 0.01), block_size (`int`, *optional*, defaults to 128),
        act_order (`bool`, *optional*, defaults to `False`):
            GPTQ options, see :func:`peft_qfa.quant.gptq_quantize`.
        clip_search (`bool`, *optional*, defaults to `False`):
            Per-group clipping search before rounding (:mod:`peft_qfa.quant.clipping`): every group's
            range is shrunk by the clip ratio with the least output error on the calibration data
            (GPTQ's Hessians; with ``"rtn"``, pass ``calibration`` too and the build collects them).
            ``"rtn"`` without calibration minimises the weight error instead, which made SmolLM2
            worse (docs/training.md has the figures).
        clip_ratios (`tuple[float, ...]`, *optional*):
            The ratios the search tries, each in (0, 1]; ``1.0`` is always added. Defaults to
            ``peft_qfa.quant.DEFAULT_CLIP_RATIOS`` (1.0 down to 0.5 in steps of 0.025). Only with
            ``clip_search=True``.
        budget (`float`, `str` or `Budget`, *optional*):
            Only when loading a saved supernet: the bit budget (``3.0``, ``"3.0bits"``) or byte budget
            (``"2.5GB"``) to search a subnet for. Parsed here, once, into a :class:`~peft_qfa.Budget`.
            Serialized only when set. (An explicit ``{group: bits}`` mapping is still accepted with a
            ``FutureWarning`` and moved to ``subnet``.)
        subnet (`dict[str, int]`, *optional*):
            Only when loading a saved supernet: the explicit ``{group: bits}`` subnet to activate (no
            search). Its names are checked against the model when it loads. Serialized only when set.
        search_data (*optional*):
            Only with a bit or byte ``budget``: the data the subnet search scores subnets on (texts or
            token ids: held-out loss; a BIG-bench-style task: accuracy; or a callable
            ``f(model) -> float``). Never serialized. See :mod:`peft_qfa.deploy.loading`.
        search_options (`dict`, *optional*):
            Only with a bit or byte ``budget``: options of the search (``strategy``, its settings,
            evaluator settings such as ``max_tokens``, ``require_adapters``). Never serialized.
        layer_bits (`dict[str, int]`, *optional*):
            Written by :func:`peft_qfa.materialize`: the one bit-width of every layer of a materialized
            (deployed) model. Its presence marks the checkpoint as materialized.
        selection (`dict`, *optional*):
            Written by :func:`peft_qfa.materialize`: how the materialized subnet was chosen (budget,
            search strategy, metric, score), for the model card.
        calibration_tokens (`int`, *optional*):
            Filled in by the quantizer after a GPTQ build: how many tokens the Hessians saw. A config
            read back from a saved supernet carries it, which is why it needs no ``calibration``.
        deploy_dtype (`str`, *optional*):
            The float dtype a materialized (deployed) model keeps its unquantized tensors (embeddings,
            norms, head) and its scales and zero points in: ``"auto"`` is 16 bits (the model's own
            ``float16``/``bfloat16``, ``bfloat16`` for a float32 model), which halves the files but
            rounds the fractional merged zero points (docs/search_and_deploy.md bounds the error);
            ``"float32"`` keeps them exact. The byte budget and the cost model count in this dtype.
            ``None`` (not given) means ``"auto"``, and lets a saved supernet's own setting stand at load.
        embedding_bits (`int`, *optional*):
            ``8`` or ``4``: a materialized model keeps its token embedding (and the output head, tied
            or not) group-wise quantized with ``group_size`` (:mod:`peft_qfa.supernet.packed_embedding`);
            ``None`` (the default) keeps it in ``deploy_dtype``. The cost model counts it. ``"search"``, when
            loading a supernet with a byte budget, makes the embedding's precision one more choice of the
            search: each feasible precision is searched with the embedding rounded to it, and the best
            score wins (docs/search_and_deploy.md).
        tied_head (`bool`, *optional*):
            Written by :func:`peft_qfa.materialize` with ``embedding_bits``: whether the packed head
            reads the embedding's codes (the model's ``tie_word_embeddings``, which the saved config
            must turn off so that transformers does not look for a float weight to tie).
        base_model (`str`, *optional*):
            Filled in by the quantizer when it builds a supernet: the path or Hub id of the float model it
            was built from (model cards name it when it is a Hub id, never a local path).
        version (`int`, *optional*):
            Format version of the saved config; written by the library, not by users.
        allow_any_model (`bool`, *optional*, defaults to `False`):
            Build a supernet from a model that is not a decoder-only causal LM (see
            :mod:`peft_qfa.supernet.scope`); such models are refused otherwise. Never serialized.
    """

    def __init__(
        self,
        bits: Sequence[int] = (2, 3, 4),
        group_size: int = 64,
        method: str = "gptq",
        calibration: Any = None,
        calibration_seq_len: int = 512,
        calibration_samples: int = 128,
        calibration_add_bos: bool | None = None,
        target_modules: str | Sequence[str] = "all-linear",
        modules_to_not_convert: Sequence[str] | None = None,
        granularity: str = "block",
        damp_percent: float = 0.01,
        block_size: int = 128,
        act_order: bool = False,
        clip_search: bool = False,
        clip_ratios: Sequence[float] | None = None,
        budget: float | str | Budget | None = None,
        tokenizer: Any = None,
        calibration_tokens: int | None = None,
        search_data: Any = None,
        search_options: Mapping[str, Any] | None = None,
        layer_bits: Mapping[str, int] | None = None,
        selection: Mapping[str, Any] | None = None,
        subnet: Mapping[str, int] | None = None,
        deploy_dtype: str | None = None,
        embedding_bits: int | None = None,
        tied_head: bool | None = None,
        base_model: str | None = None,
        version: int = CONFIG_VERSION,
        allow_any_model: bool = False,
        **kwargs,
    ):
        quant_method = kwargs.pop("quant_method", QUANT_METHOD)
        if quant_method != QUANT_METHOD:
            raise ValueError(f"QFAQuantizationConfig got quant_method={quant_method!r}; it only describes {QUANT_METHOD!r}.")
        if kwargs:
            raise TypeError(f"QFAQuantizationConfig got unknown argument(s) {sorted(kwargs)}.")
        self.quant_method = QUANT_METHOD
        self.version = version
        self.bits = bits
        self.group_size = group_size
        self.method = method
        self.granularity = granularity
        self.target_modules = target_modules
        self.modules_to_not_convert = modules_to_not_convert
        self.calibration = calibration
        self.tokenizer = tokenizer
        self.calibration_seq_len = calibration_seq_len
        self.calibration_samples = calibration_samples
        self.calibration_add_bos = calibration_add_bos
        self.calibration_tokens = calibration_tokens
        self.damp_percent = damp_percent
        self.block_size = block_size
        self.act_order = act_order
        self.clip_search = clip_search
        self.clip_ratios = clip_ratios
        self.budget = budget
        self.subnet = subnet
        self.search_data = search_data
        self.search_options = search_options
        self.layer_bits = layer_bits
        self.selection = selection
        self.deploy_dtype = deploy_dtype
        self.embedding_bits = embedding_bits
        self.tied_head = tied_head
        self.base_model = base_model
        self.allow_any_model = allow_any_model
        self.post_init()

    # ------------------------------------------------------------------ validation
    def post_init(self) -> None:
        """Normalise the fields, then validate them (``ValueError``/``TypeError`` naming the fix)."""
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"QFAQuantizationConfig: `version` must be a positive int, got {self.version!r}.")
        if self.version > CONFIG_VERSION:
            raise ValueError(
                f"This supernet was saved with QFA config version {self.version}, newer than this peft-qfa "
                f"understands ({CONFIG_VERSION}); upgrade peft-qfa to load it."
            )
        self.bits = self._normalised_bits(self.bits)
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or self.group_size <= 0:
            raise ValueError(
                f"QFAQuantizationConfig: `group_size` must be a positive int (e.g. 32, 64, 128), got {self.group_size!r}."
            )
        if self.method not in METHODS:
            raise ValueError(f"QFAQuantizationConfig: unknown `method={self.method!r}`; choose one of {METHODS}.")
        if self.granularity not in GRANULARITIES:
            raise ValueError(
                f"QFAQuantizationConfig: unknown `granularity={self.granularity!r}`; choose one of {GRANULARITIES}."
            )
        self.target_modules = self._normalised_targets(self.target_modules)
        if self.modules_to_not_convert is not None:
            if isinstance(self.modules_to_not_convert, str) or not all(
                isinstance(m, str) for m in self.modules_to_not_convert
            ):
                raise TypeError(
                    "QFAQuantizationConfig: `modules_to_not_convert` must be a list of module names, "
                    f"got {self.modules_to_not_convert!r}."
                )
            self.modules_to_not_convert = list(self.modules_to_not_convert)
        for name in ("calibration_seq_len", "calibration_samples", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"QFAQuantizationConfig: `{name}` must be a positive int, got {value!r}.")
        if not isinstance(self.damp_percent, (int, float)) or not 0 < self.damp_percent <= 1:
            raise ValueError(f"QFAQuantizationConfig: `damp_percent` must be in (0, 1], got {self.damp_percent!r}.")
        if not isinstance(self.allow_any_model, bool):
            raise TypeError(f"QFAQuantizationConfig: `allow_any_model` must be a bool, got {self.allow_any_model!r}.")
        if not isinstance(self.act_order, bool):
            raise TypeError(f"QFAQuantizationConfig: `act_order` must be a bool, got {self.act_order!r}.")
        self._check_clipping()
        if self.calibration_add_bos is not None and not isinstance(self.calibration_add_bos, bool):
            raise TypeError(
                "QFAQuantizationConfig: `calibration_add_bos` must be True, False or None (follow the tokenizer), "
                f"got {self.calibration_add_bos!r}."
            )
        if isinstance(self.budget, Mapping):
            warnings.warn(
                "QFAQuantizationConfig(budget={group: bits}) is deprecated: an explicit subnet is "
                "QFAQuantizationConfig(subnet={group: bits}); `budget` is a bit or byte budget to search for.",
                FutureWarning,
                stacklevel=3,
            )
            if self.subnet is not None:
                raise ValueError("QFAQuantizationConfig: pass the explicit subnet once, as `subnet=`.")
            self.budget, self.subnet = None, self.budget
        if self.budget is not None and not isinstance(self.budget, Budget):
            self.budget = Budget.parse(self.budget)  # the one parse; everything below takes the typed Budget
        if self.subnet is not None:
            self.subnet = _checked_subnet(self.subnet)
            if self.budget is not None:
                raise ValueError(
                    "QFAQuantizationConfig: pass either `budget=` (searched) or `subnet=` (given), not both."
                )
        self._check_deployment_fields()
        self._check_storage()
        self._check_calibration()

    def _check_clipping(self) -> None:
        if not isinstance(self.clip_search, bool):
            raise TypeError(f"QFAQuantizationConfig: `clip_search` must be a bool, got {self.clip_search!r}.")
        if self.clip_ratios is None:
            return
        if not self.clip_search:
            warnings.warn(
                "QFAQuantizationConfig: `clip_ratios` is ignored without `clip_search=True`.", stacklevel=3
            )
        try:
            self.clip_ratios = check_clip_ratios(self.clip_ratios)
        except (TypeError, ValueError) as err:
            raise type(err)(f"QFAQuantizationConfig: `clip_ratios`: {err}") from None

    @property
    def search_clip_ratios(self) -> tuple[float, ...] | None:
        """The clip ratios the build searches, or ``None`` when clipping is off."""
        if not self.clip_search:
            return None
        return self.clip_ratios if self.clip_ratios is not None else DEFAULT_CLIP_RATIOS

    @staticmethod
    def _normalised_bits(bits) -> tuple[int, ...]:
        if isinstance(bits, (int, str)) or not isinstance(bits, Sequence):
            raise TypeError(f"QFAQuantizationConfig: `bits` must be a sequence of ints like (2, 3, 4), got {bits!r}.")
        unknown = [b for b in bits if isinstance(b, bool) or not isinstance(b, int) or b not in SUPPORTED_BITS]
        if unknown or not bits:
            raise ValueError(
                f"QFAQuantizationConfig: unsupported bit-width(s) {unknown or list(bits)} in `bits={tuple(bits)}`; "
                f"choose from {SUPPORTED_BITS}."
            )
        return tuple(sorted(set(bits)))

    @staticmethod
    def _normalised_targets(targets) -> str | list[str]:
        if isinstance(targets, str):
            if targets != "all-linear":
                try:
                    re.compile(targets)
                except re.error as err:
                    raise ValueError(
                        f"QFAQuantizationConfig: `target_modules={targets!r}` is neither 'all-linear' nor a valid regex: {err}."
                    ) from err
            return targets
        if isinstance(targets, Sequence) and targets and all(isinstance(t, str) and t for t in targets):
            return list(targets)
        raise TypeError(
            "QFAQuantizationConfig: `target_modules` must be 'all-linear', a regex string or a non-empty list of "
            f"module names like ['q_proj', 'v_proj'], got {targets!r}."
        )

    def _check_calibration(self) -> None:
        data = self.calibration
        if data is None:
            if self.needs_calibration:
                raise ValueError(
                    "QFAQuantizationConfig: method='gptq' needs calibration data: pass `calibration=` a list of "
                    "texts, a datasets.Dataset with a text column or a LongTensor [n, seq] of token ids; or use "
                    "method='rtn', which needs none. (To load a saved supernet, pass no quantization_config, or "
                    "one with only `budget=`.)"
                )
            return
        is_text = isinstance(data, str) or (
            isinstance(data, Sequence) and not isinstance(data, torch.Tensor) and all(isinstance(t, str) for t in data)
        )
        is_tokens = isinstance(data, torch.Tensor) and not data.is_floating_point() and data.dim() in (1, 2)
        is_dataset = hasattr(data, "column_names") and hasattr(data, "__getitem__")
        if not (is_text or is_tokens or is_dataset):
            raise TypeError(
                "QFAQuantizationConfig: `calibration` must be a string, a list of strings, a datasets.Dataset or an "
                f"integer tensor [n, seq] of token ids, got {type(data).__name__}."
            )

    def _check_deployment_fields(self) -> None:
        if self.search_options is not None and not isinstance(self.search_options, Mapping):
            raise TypeError(
                f"QFAQuantizationConfig: `search_options` must be a dict like {{'strategy': 'two-stage'}}, got "
                f"{type(self.search_options).__name__}."
            )
        if self.layer_bits is not None:
            bad = {
                k: v for k, v in dict(self.layer_bits).items()
                if not isinstance(k, str) or isinstance(v, bool) or v not in SUPPORTED_BITS
            }
            if bad or not self.layer_bits:
                raise ValueError(
                    f"QFAQuantizationConfig: `layer_bits` maps layer names to bit-widths in {SUPPORTED_BITS}; got "
                    f"{dict(list(bad.items())[:3]) or 'an empty mapping'}."
                )
            self.layer_bits = dict(self.layer_bits)
            if self.selects_subnet:
                raise ValueError(
                    "QFAQuantizationConfig: this checkpoint is already a materialized subnet (`layer_bits`); a `budget` "
                    "applies only when loading a supernet. Load the supernet folder with the budget instead."
                )
        if self.selection is not None and not isinstance(self.selection, Mapping):
            raise TypeError(f"QFAQuantizationConfig: `selection` must be a dict, got {type(self.selection).__name__}.")

    def _check_storage(self) -> None:
        if self.deploy_dtype is not None and self.deploy_dtype not in DEPLOY_DTYPES:
            raise ValueError(
                f"QFAQuantizationConfig: unknown `deploy_dtype={self.deploy_dtype!r}`; choose one of {DEPLOY_DTYPES}."
            )
        if self.embedding_bits is not None and self.embedding_bits != EMBEDDING_SEARCH and (
            isinstance(self.embedding_bits, bool) or self.embedding_bits not in EMBEDDING_BITS
        ):
            raise ValueError(
                f"QFAQuantizationConfig: `embedding_bits={self.embedding_bits!r}` is not supported; choose one of "
                f"{EMBEDDING_BITS}, None (keep the embedding in `deploy_dtype`) or {EMBEDDING_SEARCH!r} (a byte budget "
                "picks it)."
            )

    @property
    def materialized(self) -> bool:
        """Whether this config describes a materialized subnet (one bit-width per layer) rather than a supernet."""
        return self.layer_bits is not None

    @property
    def selects_subnet(self) -> bool:
        """Whether this config, loading a saved supernet, selects a subnet (``budget`` or ``subnet``)."""
        return self.budget is not None or self.subnet is not None

    @property
    def uses_calibration(self) -> bool:
        """Whether the build runs the calibration data: GPTQ, or RTN's clipping search when data are given."""
        return self.method == "gptq" or (self.clip_search and self.calibration is not None)

    @property
    def needs_calibration(self) -> bool:
        """Whether building from this config still needs ``calibration`` data."""
        return (
            self.method == "gptq"
            and not self.selects_subnet
            and self.calibration_tokens is None
            and not self.materialized
        )

    # ------------------------------------------------------------------ serialization
    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe fields; the calibration data and the tokenizer are left out on purpose."""
        out = {
            "quant_method": self.quant_method,
            "version": self.version,
            "bits": list(self.bits),
            "group_size": self.group_size,
            "method": self.method,
            "granularity": self.granularity,
            "target_modules": copy.copy(self.target_modules),
            "modules_to_not_convert": copy.copy(self.modules_to_not_convert),
            "calibration_seq_len": self.calibration_seq_len,
            "calibration_samples": self.calibration_samples,
            "damp_percent": self.damp_percent,
            "block_size": self.block_size,
            "act_order": self.act_order,
        }
        if self.clip_search:
            out["clip_search"] = True
            out["clip_ratios"] = list(self.search_clip_ratios)
        if self.calibration_tokens is not None:
            out["calibration_tokens"] = self.calibration_tokens
        if self.calibration_add_bos is not None:
            out["calibration_add_bos"] = self.calibration_add_bos
        if self.budget is not None:
            out["budget"] = self.budget.to_json()
        if self.subnet is not None:
            out["subnet"] = dict(self.subnet)
        if self.layer_bits is not None:
            out["layer_bits"] = dict(self.layer_bits)
        if self.selection is not None:
            out["selection"] = copy.deepcopy(dict(self.selection))
        if self.deploy_dtype is not None:
            out["deploy_dtype"] = self.deploy_dtype
        if self.embedding_bits is not None:
            out["embedding_bits"] = self.embedding_bits
        if self.tied_head is not None:
            out["tied_head"] = self.tied_head
        if self.base_model is not None:
            out["base_model"] = self.base_model
        return out

    def __iter__(self):
        # The mixin iterates a deep copy of __dict__, which would copy (and expose) the calibration data.
        yield from self.to_dict().items()

    def __deepcopy__(self, memo):
        # transformers deep-copies the model config (and this config with it) while loading; the calibration
        # data and tokenizer are read-only inputs, so they are shared rather than copied.
        clone = copy.copy(self)
        for key, value in self.__dict__.items():
            if key not in NOT_SERIALIZED:
                setattr(clone, key, copy.deepcopy(value, memo))
        return clone

    def get_loading_attributes(self) -> dict[str, Any]:
        """Options of a ``from_pretrained(saved_supernet, quantization_config=...)`` call that apply at load time.

        The search's inputs travel only with a selection (shared, not copied: they may be large or
        unpicklable); the typed :class:`Budget` travels as it is, so it is never parsed again.
        """
        if not self.selects_subnet:
            return {}
        return {name: getattr(self, name) for name in LOADING_ATTRIBUTES if getattr(self, name) is not None}


accept_loading_attributes(QFAQuantizationConfig)


def unwrap_model(model):
    """The transformers model inside a ``PeftModel`` (adapter layers still in place), or ``model`` itself."""
    get_base_model = getattr(model, "get_base_model", None)
    return get_base_model() if callable(get_base_model) else model


def qfa_config(model) -> QFAQuantizationConfig:
    """The ``"qfa"`` quantization config of a supernet or materialized model (a clear error otherwise)."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    if isinstance(config, Mapping) and config.get("quant_method") == QUANT_METHOD:
        config = QFAQuantizationConfig.from_dict(dict(config))
    if not isinstance(config, QFAQuantizationConfig):
        raise ValueError(
            f"{type(model).__name__} is not a QFA supernet: load it with "
            "`quantization_config=QFAQuantizationConfig(...)` (after `import peft_qfa`) first."
        )
    return config
