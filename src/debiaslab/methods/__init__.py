"""Training methods, DomainBed style: one module per method, ``methods/NAME.py``, imported by name.

A method module holds one class registered as NAME (:func:`~debiaslab.methods.base.register_method`)
and the literal ``HPARAMS`` of its hyperparameters' defaults; modules without HPARAMS are helpers
that several methods share. :func:`get_method` imports a method's module the first time the method
is used, so a stage imports, and DVC makes it depend on, only the methods it trains. params.yaml's
``methods`` group says which methods each experiment trains.
"""

from __future__ import annotations

import importlib

from ..errors import DebiaslabError
from ..params import METHOD_HPARAMS
from .base import METHODS, Method, per_sample_loss, register_method

__all__ = ["METHODS", "Method", "get_method", "per_sample_loss", "register_method"]


def get_method(name: str) -> type[Method]:
    """The class registered as ``name``, importing ``methods/NAME.py`` (a known file only) first."""
    if name not in METHODS:
        if name not in METHOD_HPARAMS:
            raise DebiaslabError(f"unknown method {name!r} (registered: {', '.join(METHOD_HPARAMS)})")
        importlib.import_module(f"{__name__}.{name}")
        if name not in METHODS:
            raise DebiaslabError(f"src/debiaslab/methods/{name}.py registers no method {name!r} "
                                 f"(expected @register_method({name!r}) on its class)")
    return METHODS[name]
