"""Generators behind one interface; `create(kind, **settings)` and `load(dir)` find them by kind."""
from netsynth.models.base import REGISTRY, Generator, create, load

__all__ = ["REGISTRY", "Generator", "create", "load"]
