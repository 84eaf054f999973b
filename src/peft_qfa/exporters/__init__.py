"""Exports of a materialized subnet to formats other tools run: HQQ (transformers + hqq) and GGUF (llama.cpp).

Every exporter reads the same thing, the packed layers of a materialized model (:mod:`.source`),
and stores our float zero points as they are, so the default of each format is exact.
"""

from .api import FORMATS, export, gguf_types

__all__ = ["FORMATS", "export", "gguf_types"]
