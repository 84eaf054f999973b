"""Activating a subnet: set (and read back) every QFA layer's ``active_bits``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from torch import nn

from .layer import find_bit_layers
from .space import SearchSpace, Subnet


def search_space(model: nn.Module, granularity: str | None = None) -> SearchSpace:
    """The :class:`SearchSpace` of a supernet (bare or PEFT-wrapped) or of a materialized model."""
    return SearchSpace.from_model(model, granularity)


def as_subnet(model: nn.Module, subnet: Subnet | Mapping[str, int]) -> Subnet:
    """``subnet`` as a :class:`Subnet` of ``model``'s space; the space is built only for a mapping
    (:meth:`SearchSpace.subnet` does the coercion), so a training step that passes a ``Subnet`` builds none."""
    return subnet if isinstance(subnet, Subnet) else search_space(model).subnet(subnet)


def set_subnet(model: nn.Module, subnet: Subnet | Mapping[str, int]) -> Subnet:
    """Make every QFA layer of ``model`` run at the bit-width ``subnet`` gives its group.

    ``subnet`` is a :class:`Subnet` or a ``{group name: bits}`` dict (validated against the
    model's space). Returns the :class:`Subnet` that is now active.
    """
    sub = as_subnet(model, subnet)
    layers = find_bit_layers(model)
    layer_bits = sub.layer_bits()
    missing = [name for name in layer_bits if name not in layers]
    if missing:
        raise ValueError(f"The subnet names layers this model does not have, e.g. {missing[:3]}.")
    for name, bits in layer_bits.items():
        layers[name].active_bits = bits
    return sub


def get_subnet(model: nn.Module, granularity: str | None = None) -> Subnet:
    """The subnet the model runs now, read back from its layers' ``active_bits``."""
    space = search_space(model, granularity)
    return space.from_layer_bits({name: layer.active_bits for name, layer in find_bit_layers(model).items()})


@contextlib.contextmanager
def use_subnet(model: nn.Module, subnet: Subnet | Mapping[str, int]) -> Iterator[Subnet]:
    """Run ``model`` as ``subnet`` inside the ``with`` block, restoring the previous bits after."""
    layers = find_bit_layers(model)
    previous = {name: layer.active_bits for name, layer in layers.items()}
    try:
        yield set_subnet(model, subnet)
    finally:
        for name, bits in previous.items():
            layers[name].active_bits = bits
