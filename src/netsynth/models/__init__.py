"""Generators: the interface (base), the one list of kinds (registry), and one module per kind."""
from netsynth.models.base import Generator, create, load
from netsynth.models.registry import KINDS, Kind, register

__all__ = ["KINDS", "Generator", "Kind", "create", "load", "register"]
