"""``SearchSpace`` and ``Subnet``: which bit-width choices a supernet offers, and one choice.

A *group* is the unit that picks one bit-width: a decoder block (``granularity="block"``, the
paper's setting: every linear of block ``l`` shares ``b_l``) or a single linear
(``granularity="layer"``). A :class:`Subnet` maps every group of its space to a bit-width; it is
JSON-serializable and always validated against its space.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from .cost import Cost, LayerShape, subnet_cost, supernet_bytes
from .layer import find_bit_layers
from .packed_embedding import EMBEDDING_SEARCH
from .storage import packed_table_bytes, resolve_deploy_dtype

GRANULARITIES = ("block", "layer")

_BLOCK_PATTERN = re.compile(r"^((?:.*\.)?(?:layers|h|blocks|block)\.\d+)\.")


def group_of(layer_name: str, granularity: str) -> str:
    """The group a layer belongs to: its decoder block (``...layers.7``) or itself."""
    if granularity == "layer":
        return layer_name
    match = _BLOCK_PATTERN.match(layer_name)
    return match.group(1) if match else layer_name


@dataclass(frozen=True)
class SpaceGroup:
    name: str
    layers: tuple[str, ...]
    n_params: int
    bits: tuple[int, ...]


class SearchSpace:
    """The groups of a supernet, their parameter counts and candidate bit-widths, and their cost."""

    def __init__(self, layers: list[LayerShape], bits: Mapping[str, tuple[int, ...]], granularity: str, other_bytes: int):
        if granularity not in GRANULARITIES:
            raise ValueError(f"Unknown granularity {granularity!r}: choose one of {GRANULARITIES}.")
        if not layers:
            raise ValueError("The search space is empty: the model has no QFA layers.")
        self.granularity = granularity
        self.layers = list(layers)
        self.layer_bits_choices = dict(bits)
        self.other_bytes = int(other_bytes)
        members: dict[str, list[LayerShape]] = {}
        for layer in self.layers:
            members.setdefault(group_of(layer.name, granularity), []).append(layer)
        groups = []
        for name, group_layers in members.items():
            choices = {self.layer_bits_choices[layer.name] for layer in group_layers}
            if len(choices) != 1:
                raise ValueError(f"Layers of group `{name}` hold different bit-widths {sorted(choices)}.")
            groups.append(SpaceGroup(name, tuple(layer.name for layer in group_layers),
                                     sum(layer.n_params for layer in group_layers), choices.pop()))
        self.groups: tuple[SpaceGroup, ...] = tuple(groups)
        self._by_name = {g.name: g for g in self.groups}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_model(cls, model: nn.Module, granularity: str | None = None) -> SearchSpace:
        """Read the space off a supernet, a PEFT-wrapped supernet or a materialized model."""
        layers = find_bit_layers(model)
        if not layers:
            raise ValueError(
                f"{type(model).__name__} has no QFA layers: load it with "
                "`quantization_config=QFAQuantizationConfig(...)` (and `import peft_qfa` first)."
            )
        if granularity is None:
            granularity = _configured_granularity(model)
        storage = _deployed_storage(model)
        float_bytes = None if storage is None else storage[0]
        shapes = [
            LayerShape(
                name=name,
                out_features=layer.out_features,
                in_features=layer.in_features,
                group_size=layer.group_size,
                scale_bytes=float_bytes or layer.quantized(layer.candidate_bits[0]).scales.element_size(),
                bias_bytes=0 if getattr(layer, "bias", None) is None
                else layer.bias.numel() * (float_bytes or layer.bias.element_size()),
            )
            for name, layer in layers.items()
        ]
        bits = {name: layer.candidate_bits for name, layer in layers.items()}
        return cls(shapes, bits, granularity, _full_precision_bytes(model, storage))

    def restricted(self, bits) -> SearchSpace:
        """The same groups with only the candidate bit-widths in ``bits`` (to train some bit-widths only).

        Raises:
            `ValueError`: ``bits`` names a bit-width no group holds, or leaves a group without any.
        """
        keep = sorted({int(b) for b in bits})
        unknown = [b for b in keep if b not in self.all_bits]
        if not keep or unknown:
            raise ValueError(
                f"Cannot restrict the search space to bits {list(bits)}: the supernet holds {list(self.all_bits)}."
            )
        choices = {name: tuple(b for b in held if b in keep) for name, held in self.layer_bits_choices.items()}
        empty = [name for name, held in choices.items() if not held]
        if empty:
            raise ValueError(
                f"Restricting the search space to bits {keep} leaves layer `{empty[0]}` (and {len(empty) - 1} more) "
                f"without a bit-width; it holds {list(self.layer_bits_choices[empty[0]])}."
            )
        return SearchSpace(self.layers, choices, self.granularity, self.other_bytes)

    # ------------------------------------------------------------------ queries
    @property
    def group_names(self) -> list[str]:
        return [g.name for g in self.groups]

    def __len__(self) -> int:
        return len(self.groups)

    def __repr__(self) -> str:
        bits = sorted({b for g in self.groups for b in g.bits})
        return f"SearchSpace({len(self)} {self.granularity} groups, {len(self.layers)} layers, bits={bits})"

    def group(self, name: str) -> SpaceGroup:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"`{name}` is not a group of this space; groups are e.g. {self.group_names[:3]}.") from None

    @property
    def all_bits(self) -> tuple[int, ...]:
        return tuple(sorted({b for g in self.groups for b in g.bits}))

    # ------------------------------------------------------------------ subnets
    def subnet(self, bits: Subnet | Mapping[str, int]) -> Subnet:
        """``bits`` as a :class:`Subnet` of this space: the one place a ``Subnet | Mapping`` is coerced.

        A ``Subnet`` is checked to belong to this space and returned as is; a ``{group: bits}``
        mapping is validated (unknown groups fail with the real names)."""
        if isinstance(bits, Subnet):
            bits.check_space(self)
            return bits
        return Subnet(self, bits)

    def uniform(self, bits: int) -> Subnet:
        """Every group at ``bits``."""
        return Subnet(self, {g.name: bits for g in self.groups})

    def sample(self, seed: int | None = None) -> Subnet:
        """Each group's bit-width drawn uniformly from its candidates."""
        rng = random.Random(seed)
        return Subnet(self, {g.name: rng.choice(g.bits) for g in self.groups})

    def from_layer_bits(self, layer_bits: Mapping[str, int]) -> Subnet:
        """The subnet whose groups carry the given per-layer bits (layers of a group must agree)."""
        bits: dict[str, int] = {}
        for g in self.groups:
            seen = {layer_bits[name] for name in g.layers if name in layer_bits}
            if len(seen) > 1:
                raise ValueError(
                    f"Layers of group `{g.name}` run at different bit-widths {sorted(seen)}; a {self.granularity}-"
                    "granularity subnet needs one per group. Use `granularity='layer'`."
                )
            if not seen:
                raise ValueError(f"No bit-width given for the layers of group `{g.name}`.")
            bits[g.name] = seen.pop()
        return Subnet(self, bits)

    def cost(self, subnet: Subnet | Mapping[str, int]) -> Cost:
        return subnet_cost(self.layers, self.subnet(subnet).layer_bits(), self.other_bytes)

    def supernet_bytes(self) -> int:
        return supernet_bytes(self.layers, self.layer_bits_choices, self.other_bytes)

    def fingerprint(self) -> dict:
        """What must match for a subnet (or sampler, or adapter) to belong to this space."""
        return {"granularity": self.granularity, "groups": {g.name: list(g.bits) for g in self.groups}}


class Subnet(Mapping):
    """One bit-width per group of a :class:`SearchSpace`; read it like a ``{group: bits}`` dict."""

    def __init__(self, space: SearchSpace, bits: Mapping[str, int]):
        unknown = [name for name in bits if name not in space._by_name]
        if unknown:
            raise ValueError(
                f"Subnet names {len(unknown)} group(s) not in the model, e.g. {unknown[:3]}; the model's "
                f"{space.granularity} groups are e.g. {space.group_names[:3]}."
            )
        missing = [g.name for g in space.groups if g.name not in bits]
        if missing:
            raise ValueError(f"Subnet gives no bit-width for {len(missing)} group(s), e.g. {missing[:3]}.")
        for g in space.groups:
            if bits[g.name] not in g.bits:
                raise ValueError(
                    f"Group `{g.name}` cannot run at {bits[g.name]!r} bits; its candidates are {g.bits}."
                )
        self.space = space
        self._bits = {g.name: int(bits[g.name]) for g in space.groups}

    def __getitem__(self, group: str) -> int:
        return self._bits[group]

    def __iter__(self):
        return iter(self._bits)

    def __len__(self) -> int:
        return len(self._bits)

    def __eq__(self, other) -> bool:
        if isinstance(other, Subnet):
            return self._bits == other._bits and self.space.fingerprint() == other.space.fingerprint()
        return isinstance(other, Mapping) and dict(self._bits) == dict(other)

    def __hash__(self) -> int:
        return hash(tuple(self._bits.items()))

    def __repr__(self) -> str:
        return f"Subnet({self.cost()}, bits={list(self._bits.values())})"

    def check_space(self, space: SearchSpace) -> None:
        if space is not self.space and space.fingerprint() != self.space.fingerprint():
            raise ValueError("This subnet belongs to another search space (different groups or bit-widths).")

    def layer_bits(self) -> dict[str, int]:
        """``{layer name: bits}`` for every layer of the space."""
        return {layer: self._bits[g.name] for g in self.space.groups for layer in g.layers}

    def cost(self) -> Cost:
        return subnet_cost(self.space.layers, self.layer_bits(), self.space.other_bytes)

    @property
    def avg_bits(self) -> float:
        return self.cost().avg_bits

    def to_dict(self) -> dict:
        return {"granularity": self.space.granularity, "bits": dict(self._bits)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, space: SearchSpace, data: Mapping) -> Subnet:
        if data.get("granularity", space.granularity) != space.granularity:
            raise ValueError(
                f"Subnet was saved for granularity={data['granularity']!r}, the space is {space.granularity!r}."
            )
        return cls(space, data["bits"] if "bits" in data else data)

    @classmethod
    def from_json(cls, space: SearchSpace, text: str) -> Subnet:
        return cls.from_dict(space, json.loads(text))


def _configured_granularity(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    qconfig = getattr(config, "quantization_config", None)
    if isinstance(qconfig, Mapping):
        return qconfig.get("granularity", "block")
    return getattr(qconfig, "granularity", "block") or "block"


def _deployed_storage(model: nn.Module) -> tuple[int, int | None, int] | None:
    """``(float bytes, embedding bits, group size)`` a supernet will be deployed with
    (:mod:`.storage`); ``None`` for a materialized model, whose tensors are already what is deployed."""
    config = getattr(getattr(model, "config", None), "quantization_config", None)
    get = config.get if isinstance(config, Mapping) else (lambda key, default=None: getattr(config, key, default))
    if config is None or get("layer_bits") is not None:
        return None
    dtype = resolve_deploy_dtype(getattr(model.config, "dtype", None), get("deploy_dtype"))
    embedding_bits = get("embedding_bits")
    if embedding_bits == EMBEDDING_SEARCH:  # not chosen yet: the float embedding (the loader builds one space per choice)
        embedding_bits = None
    return dtype.itemsize, embedding_bits, get("group_size", 64)


def _embedding_tables(model: nn.Module) -> list[torch.Tensor]:
    """The float embedding table and, when it has its own, the head's (what ``embedding_bits`` packs)."""
    tables = []
    for getter in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, getter, lambda: None)()
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2 and weight.is_floating_point():
            tables.append(weight)
    return tables


def _full_precision_bytes(model: nn.Module, storage: tuple[int, int | None, int] | None = None) -> int:
    """Bytes of every tensor a deployed model keeps outside its quantized linears (embeddings, norms, head).

    Counts each storage once (tied embeddings), skips QFA layers (costed per bit-width) and the
    adapters of any PEFT tuner (merged away at deployment; PEFT's tuner layers name the modules that
    hold them in ``adapter_layer_names``). With a supernet's deployed ``storage``, float parameters are
    counted in the deploy dtype (buffers such as rotary frequencies keep theirs, as materialization
    leaves them) and the embedding tables packed at ``embedding bits``.
    """
    float_bytes, embedding_bits, group_size = storage or (None, None, None)
    packed_tables = {id(t) for t in _embedding_tables(model)} if embedding_bits else set()
    skipped = {id(p) for layer in find_bit_layers(model).values() for p in layer.parameters(recurse=True)}
    for module in model.modules():
        for attr in getattr(module, "adapter_layer_names", ()):
            holder = getattr(module, attr, None)
            if isinstance(holder, nn.Module):
                skipped.update(id(t) for t in [*holder.parameters(), *holder.buffers()])
    seen, total = set(), 0
    for _, tensor in list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers()):
        if id(tensor) in skipped:
            continue
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset()) if tensor.device.type != "meta" else id(tensor)
        if key in seen:
            continue
        seen.add(key)
        if id(tensor) in packed_tables:
            total += packed_table_bytes(*tensor.shape, embedding_bits, group_size, float_bytes)
        elif float_bytes is not None and tensor.is_floating_point() and isinstance(tensor, nn.Parameter):
            total += tensor.numel() * float_bytes
        else:
            total += tensor.numel() * tensor.element_size()
    return total
