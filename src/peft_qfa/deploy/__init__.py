"""Deployment: materialize a subnet (adapters merged, packed), load with a budget, push to the Hub with a card."""

from .hub import HubPushError, push_to_hub, save_supernet
from .loading import from_pretrained
from .materialize import materialize
from .model_card import render_materialized_card, render_supernet_card
from .packed_layer import QFAPackedLinear

__all__ = [
    "HubPushError",
    "QFAPackedLinear",
    "from_pretrained",
    "materialize",
    "push_to_hub",
    "render_materialized_card",
    "render_supernet_card",
    "save_supernet",
]
