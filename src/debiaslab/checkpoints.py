"""Reading weight files (checkpoints, resume state, GAN generators, local backbone weights).

Only tensors and plain containers are ever loaded (``torch.load(..., weights_only=True)``); every
way such a file can be wrong, from a truncated archive to a pickled object that weights-only
loading refuses, is a one-line :class:`DebiaslabError` naming the file, never PyTorch's page of
advice (which suggests ``weights_only=False``: running whatever code the file carries).
"""

from __future__ import annotations

import pickle
import pickletools
import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import DebiaslabError

# What weights-only unpickling says when the file needs a class or function it does not allow.
_OBJECT_REFUSED = re.compile(r"GLOBAL (\S+)|unrecognized function|new object for|must be imported to load")
_OBJECT_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX"}
REFUSED = ("refused: the file contains pickled Python objects that are not plain tensors/containers "
           "({found}only weights are loaded; never load it with weights_only=False)")


def load_weights_file(path: str | Path, map_location="cpu", *, what: str = "checkpoint",
                      label: str | None = None):
    """``torch.load(path, weights_only=True)``; any failure is one line starting with ``label``
    (default: the path) and saying why, with ``what`` naming the kind of file expected."""
    label = str(path) if label is None else label
    try:
        with warnings.catch_warnings():
            # a plain pickle (not torch.save) warns about its protocol before it is refused
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        match = _OBJECT_REFUSED.search(str(err))
        if match is None and not _imports_objects(path):
            raise DebiaslabError(f"{label}: not a readable {what} (not a PyTorch weights file, "
                                 f"or a damaged one: {_inner_reason(err)})") from None
        found = f"it needs {match[1]}; " if match is not None and match[1] else ""
        raise DebiaslabError(f"{label}: {REFUSED.format(found=found)}") from None
    except FileNotFoundError:
        raise DebiaslabError(f"{label}: {what} not found") from None
    except OSError as err:
        raise DebiaslabError(f"{label}: cannot read the {what} ({err.strerror or err})") from None
    except EOFError:
        raise DebiaslabError(f"{label}: not a readable {what} (the file ends early: truncated?)") from None
    except Exception as err:  # noqa: BLE001 - zip, storage and decoding errors: all bad input
        raise DebiaslabError(f"{label}: not a readable {what} ({first_line(err)})") from None


def _imports_objects(path) -> bool:
    """Whether ``path`` is a bare pickle stream (pickle.dump, not torch.save) that builds classes
    or calls functions. Weights-only loading stops at its first unsupported opcode; pickletools
    only parses the opcodes and runs nothing."""
    try:
        with open(path, "rb") as f:
            return any(op.name in _OBJECT_OPCODES for op, _, _ in pickletools.genops(f))
    except Exception:  # noqa: BLE001 - not a pickle stream after all
        return False


def _inner_reason(err: BaseException) -> str:
    """PyTorch wraps the unpickler's one-line reason in paragraphs of advice: keep the reason."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    inner = [ln for ln in lines if not ln.startswith(("Weights only load failed", "Please file",
                                                      "Check the documentation"))]
    return first_line(inner[0] if inner else err)


def first_line(err: BaseException | str, limit: int = 200) -> str:
    """The first sentence of an error's text, on one line, at most ``limit`` characters."""
    text = " ".join(str(err).split())
    text = text.split(". ", 1)[0] or type(err).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def shape_text(shape) -> str:
    return "[" + ",".join(str(int(n)) for n in shape) + "]"


def state_dict_problem(module: nn.Module, state, *, ignore: tuple[str, ...] = ()) -> str | None:
    """Why ``state`` cannot be loaded into ``module`` (strict), or None if it can; keys starting
    with a prefix in ``ignore`` are left out on both sides."""
    if not isinstance(state, dict):
        return f"the weights are a {type(state).__name__}, not a dict of tensors"
    expected = {k: v for k, v in module.state_dict().items() if not k.startswith(ignore)}
    given = {k: v for k, v in state.items() if not (isinstance(k, str) and k.startswith(ignore))}
    missing = [k for k in expected if k not in given]
    unexpected = [str(k) for k in given if k not in expected]
    if missing or unexpected:
        parts = [f"{name}: {key_list(keys)}"
                 for name, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
        return "; ".join(parts)
    for key, want in expected.items():
        have = given[key]
        if not isinstance(have, torch.Tensor):
            return f"{key} is a {type(have).__name__}, not a tensor"
        if have.shape != want.shape:
            return (f"first mismatch: {key} has shape {shape_text(have.shape)}, the model expects "
                    f"{shape_text(want.shape)}")
    return None


def load_module_weights(module: nn.Module, state, label: str, *, ignore: tuple[str, ...] = (),
                        mismatch: str = "weights do not fit the model") -> None:
    """``module.load_state_dict(state)``, or one line ``label: mismatch (why)``; keys starting with
    a prefix in ``ignore`` are left out on both sides (and stay as the module has them)."""
    problem = state_dict_problem(module, state, ignore=ignore)
    if problem is None:
        try:
            module.load_state_dict({k: v for k, v in state.items() if not k.startswith(ignore)},
                                   strict=not ignore)
            return
        except (RuntimeError, TypeError, ValueError) as err:  # e.g. a dtype that cannot be copied
            problem = first_line(err)
    raise DebiaslabError(f"{label}: {mismatch} ({problem})")


def missing_keys(obj, keys: tuple[str, ...]) -> list[str]:
    """The keys of ``keys`` that the dict ``obj`` lacks (all of them if it is not a dict)."""
    return [k for k in keys if not isinstance(obj, dict) or k not in obj]


def describe(obj) -> str:
    """What a loaded file holds, for an error message: 'a list', 'a dict with keys a, b'."""
    if isinstance(obj, dict):
        return f"a dict with keys {key_list(obj, 6)}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"


def key_list(keys, limit: int = 3) -> str:
    keys = [str(k) for k in keys]
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")
