"""Deployment: materialize a subnet (adapters merged, packed), load with a budget, push to the Hub with a card."""

from .hub import HubPushError, push_to_hub
from .loading import from_pretrained
from .materialize import materialize
from .model_card import render_materialized_card, render_supernet_card

__all__ = [
    "HubPushError",
    "from_pretrained",
    "materialize",
    "push_to_hub",
    "render_materialized_card",
    "render_supernet_card",
]
