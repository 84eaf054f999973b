"""The search space of a saved supernet, read from its safetensors headers without loading it.

``peft-qfa search`` and ``export`` use it to refuse a budget outside the supernet's range, or a
``--subnet`` naming unknown groups, before the minutes-long load of a real model. The space is the
one :meth:`SearchSpace.from_model` builds after the load, up to tensors the headers cannot tell apart
(tied weights are stored once, as the loaded model counts them); so a budget is refused here only
when it is outside the range by more than :data:`MARGIN`, and the exact check still runs after the load.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..supernet.cost import LayerShape
from ..supernet.integrity import safetensors_header
from ..supernet.space import SearchSpace
from ..tuner.config import QFA_PREFIX

MARGIN = 0.01
_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
_QFA_TENSOR = re.compile(r"^(?P<layer>.+)\.b(?P<bits>\d+)_(?P<kind>packed|scales|zeros)$")


def saved_search_space(folder: str | os.PathLike, config: dict) -> SearchSpace | None:
    """The space of the supernet saved in ``folder`` with the ``qfa`` ``config``; ``None`` if it cannot be read."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("model*.safetensors"))
    if not folder.is_dir() or not files or config.get("layer_bits") is not None:
        return None
    entries = {}
    for path in files:
        entries.update(safetensors_header(path))
    layers: dict[str, dict] = {}
    for key, entry in entries.items():
        match = _QFA_TENSOR.match(key)
        if match:
            layer = layers.setdefault(match["layer"], {"bits": set()})
            layer["bits"].add(int(match["bits"]))
            if match["kind"] == "scales":
                layer["scales"] = entry
    if not layers or any("scales" not in layer for layer in layers.values()):
        return None
    group_size = int(config.get("group_size", 0)) or None
    if group_size is None:
        return None
    shapes, owned = [], set()
    for name, layer in layers.items():
        out_features, n_groups = layer["scales"]["shape"]
        bias = entries.get(f"{name}.bias")
        shapes.append(LayerShape(
            name=name,
            out_features=out_features,
            in_features=n_groups * group_size,
            group_size=group_size,
            scale_bytes=_DTYPE_BYTES.get(layer["scales"]["dtype"], 4),
            bias_bytes=0 if bias is None else _nbytes(bias),
        ))
        owned |= {f"{name}.weight", f"{name}.bias"}
    other = sum(
        _nbytes(entry) for key, entry in entries.items()
        if key not in owned and not _QFA_TENSOR.match(key) and QFA_PREFIX not in key
    )
    granularity = config.get("granularity", "block")
    return SearchSpace(shapes, {n: tuple(sorted(layer["bits"])) for n, layer in layers.items()}, granularity, other)


def _nbytes(entry: dict) -> int:
    count = 1
    for size in entry["shape"]:
        count *= size
    return count * _DTYPE_BYTES.get(entry["dtype"], 4)


__all__ = ["MARGIN", "saved_search_space"]
