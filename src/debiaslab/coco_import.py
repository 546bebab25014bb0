"""COCO object labels and a per-image gender, as a multi-label table (debiaslab.table) for leakage.

    python -m debiaslab.coco_import \\
        --instances /data/coco/annotations/instances_train2014.json \\
        --instances /data/coco/annotations/instances_val2014.json \\
        --gender train.data --gender val.data --gender test.data \\
        --images-root /data/coco --out /data/coco/table.csv --exclude person

writes ``image,split,<one 0/1 column per COCO category>,male``: a category is 1 when the image
has at least one annotation of it (crowd annotations included). Column names are the category
names in lower case with every run of other characters replaced by ``_`` (``teddy bear`` ->
``teddy_bear``, as in Wang et al.'s object_id.map), in COCO's category-id order; the protected
column (``--protected``, default ``male``) is 1 for male, 0 for female, last.

Inputs:

- ``--instances``: COCO's ``instances_<set>.json`` (info, licenses, images, annotations,
  categories; category ids are COCO's, 1..90 with gaps). ``<set>`` names the image folder:
  ``<images-root>/<set>/<file_name>`` (COCO's own layout: train2014/, val2014/).
- ``--gender``: per-image gender, one or more files. A CSV with a header ``image_id,gender``
  (``male`` / ``female``) and optionally ``split`` (train / val / test); or Wang et al.'s
  ``train.data`` / ``val.data`` / ``test.data`` (uvavision/Balanced-Datasets-Are-Not-Enough,
  ``object_multilabel/data/``: gender from the captions, one-hot [man, woman], and their split;
  read as plain data: the pickle is scanned first and refused unless its opcodes only build
  lists, dicts, numbers and strings, as Wang et al.'s do, nested a few levels deep).
  Images without a gender are dropped (counted in the summary).
- The split: the gender files' own (``split`` column, or the .data file's name) when they give
  one; otherwise the images of the first ``--instances`` file are train, and those of the second
  are halved at random (``--seed``) into val and test, as Wang et al. did: their train.data holds
  train2014 images, their val.data and test.data two disjoint halves of the 10,840 val2014 images
  that have a gender.

The table must sit above the images (``--out`` in ``--images-root`` or a parent of it): its image
paths are relative to its folder, which becomes ``data.root``. Every problem is one line naming
the file, entry and value; the table is written only when everything checked out.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import pickle
import pickletools
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DebiaslabError, stage_main
from .io import atomic_path
from .table import IMAGE_COLUMN, SPLIT_COLUMN, SPLITS, check_relative_name, resolve_inside

INSTANCES_NAME = re.compile(r"instances_(\w+)\.json")
GENDERS = {"male": 1, "female": 0}
WANG_GENDER = {(1, 0): 1, (0, 1): 0}  # Wang et al.'s one-hot [man, woman]


@dataclass(frozen=True)
class Instances:
    path: Path
    image_set: str  # train2014: the image folder
    file_names: dict[int, str]  # image id -> file name, in file order
    categories: dict[int, str]  # category id -> name, in file order
    present: dict[int, set[int]]  # image id -> category ids it has an annotation of


@dataclass(frozen=True)
class Gender:
    value: int  # 1 male, 0 female
    split: str | None
    where: str  # file and line or entry, for messages
    file_name: str | None = None  # Wang et al.'s files name the image too


def sanitise(name: str) -> str:
    """A category name as a column name: lower case, every run of other characters one ``_``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


# ------------------------------------------------------------------------------------ instances
def _load_json(path: Path) -> object:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: file not found") from None
    except json.JSONDecodeError as err:
        raise DebiaslabError(f"{path}: not valid JSON ({err.msg}: line {err.lineno}, column "
                             f"{err.colno})") from None
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not UTF-8 JSON text") from None


def _show(value: object) -> str:
    """A value for a one-line message, short whatever the file holds: a list or dict by its type and
    length (its repr could be huge), an over-long scalar's repr cut."""
    if isinstance(value, list | dict | tuple | set):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    if isinstance(value, str | bytes) and len(value) > 60:
        return f"{repr(value[:60])[:80]}... ({len(value)} characters)"  # not repr() of all of it
    return repr(value)


def _int(entry: dict, key: str, where: str) -> int:
    if key not in entry:
        raise DebiaslabError(f"{where}: no {key!r} key")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DebiaslabError(f"{where}: {key} is {_show(value)}, expected an integer")
    return value


def _name(entry: dict, key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value.strip():
        raise DebiaslabError(f"{where}: {key} is {_show(value)}, expected a non-empty string"
                             if key in entry else f"{where}: no {key!r} key")
    return value


def _entries(data: dict, key: str, path: Path) -> list[dict]:
    if key not in data:
        raise DebiaslabError(f"{path}: no {key!r} key; expected COCO's instances format (info, "
                             "licenses, images, annotations, categories)")
    entries = data[key]
    if not isinstance(entries, list):
        raise DebiaslabError(f"{path}: {key} is {type(entries).__name__}, expected a list")
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DebiaslabError(f"{path}: {key}[{i}] is {type(entry).__name__}, expected an object")
    return entries


def read_instances(path: str | Path) -> Instances:
    """Images, categories and per-image category sets of one COCO instances file, checked."""
    path = Path(path)
    match = INSTANCES_NAME.fullmatch(path.name)
    if not match:
        raise DebiaslabError(f"{path}: expected COCO's file name instances_<set>.json (e.g. "
                             "instances_train2014.json): <set> names the image folder under "
                             "--images-root")
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DebiaslabError(f"{path}: the top level is {type(data).__name__}, expected an object "
                             "with images, annotations and categories (COCO's instances format)")
    images, annotations, categories = (_entries(data, k, path)
                                       for k in ("images", "annotations", "categories"))
    file_names: dict[int, str] = {}
    first: dict[int, int] = {}
    for i, image in enumerate(images):
        where = f"{path}: images[{i}]"
        image_id = _int(image, "id", where)
        if image_id in first:
            raise DebiaslabError(f"{where}: id {image_id} appears again (first at "
                                 f"images[{first[image_id]}]); expected unique image ids")
        first[image_id] = i
        file_names[image_id] = _name(image, "file_name", f"{where} (id {image_id})")
    cats: dict[int, str] = {}
    for i, category in enumerate(categories):
        where = f"{path}: categories[{i}]"
        cat_id = _int(category, "id", where)
        if cat_id in cats:
            raise DebiaslabError(f"{where}: id {cat_id} appears again; expected unique category ids")
        cats[cat_id] = _name(category, "name", f"{where} (id {cat_id})")
    if not cats:
        raise DebiaslabError(f"{path}: categories is empty; expected COCO's object categories")
    present: dict[int, set[int]] = {image_id: set() for image_id in file_names}
    for i, ann in enumerate(annotations):
        where = f"{path}: annotations[{i}]" + (f" (id {ann['id']})" if "id" in ann else "")
        image_id, cat_id = _int(ann, "image_id", where), _int(ann, "category_id", where)
        if image_id not in present:
            raise DebiaslabError(f"{where}: image_id {image_id} is not among the file's images")
        if cat_id not in cats:
            raise DebiaslabError(f"{where}: category_id {cat_id} is not among the file's "
                                 f"categories ({', '.join(map(str, cats))})")
        present[image_id].add(cat_id)
    return Instances(path, match.group(1), file_names, cats, present)


# ------------------------------------------------------------------------------------ gender
MAX_WANG_BYTES = 256 * 2**20  # Wang et al.'s train.data is about 10 MB, val.data and test.data 2 MB
MAX_PICKLE_NESTING = 8  # lists and dicts in one another; Wang et al.'s files nest 3 deep
MAX_PICKLE_STACK = 4096  # values on the stack; protocols 1+ push up to 1,000 items at a time
_MARK, _SCALAR = -1, 0  # stack slots in _scan_pickle; a list or dict is its depth, 1 or more
WANG_PICKLE = "expected a protocol-0 list of dicts as in Wang et al.'s files"

# Opcodes that push a number, a string or None/True/False. Not LONG1/LONG4 (a 2**31-byte integer),
# nor any 8-byte length (BINBYTES8, BINUNICODE8, BYTEARRAY8), nor bytes.
_SCALAR_OPS = frozenset({"INT", "LONG", "STRING", "UNICODE", "BININT", "BININT1", "BININT2",
                         "SHORT_BINSTRING", "BINSTRING", "BINUNICODE", "SHORT_BINUNICODE",
                         "NONE", "NEWTRUE", "NEWFALSE"})


class _PlainData(pickle.Unpickler):
    """Unpickles lists, dicts, numbers and strings only: any class or function is refused before
    it is looked up, so nothing in the file can run (the opcode scan refuses such files first)."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"{module}.{name}")


def _one_line(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:200] + "..."


def _scan_pickle(data: bytes, path: Path) -> None:
    """Refuse, before unpickling, a pickle that builds anything but a tree of lists, dicts, numbers
    and strings nested at most MAX_PICKLE_NESTING deep. Follows what each stack slot and memo entry
    holds (a MARK, a scalar, or a list/dict and how deep it nests): no tuples (hashing a deep one
    crashes), no classes or functions, no fetching a list or dict again from the memo (sharing
    makes a repr or walk exponential, and allows cycles), no memo index beyond the next free one
    (the unpickler allocates up to it), and every APPEND/SETITEM onto a list/dict with scalar keys."""
    stack: list[int] = []  # MARK, SCALAR, or a list/dict's depth (1: holds no list or dict)
    memo: dict[int, int] = {}
    pos, name = 0, "?"

    def refuse(why: str = "") -> DebiaslabError:
        return DebiaslabError(f"{path}: refused: pickle opcode {name} at byte {pos}{why}; "
                              f"{WANG_PICKLE}")

    def pop(n: int | None) -> list[int]:  # the top n slots, or those above the topmost MARK
        if n is None:
            if _MARK not in stack:
                raise refuse(" without a MARK")
            at = len(stack) - 1 - stack[::-1].index(_MARK)
            items = stack[at + 1:]
            del stack[at:]
        else:
            if len(stack) < n or _MARK in stack[len(stack) - n:]:
                raise refuse(" out of place")
            items = stack[len(stack) - n:]
            del stack[len(stack) - n:]
        if name in ("DICT", "SETITEM", "SETITEMS") and (len(items) % 2 or any(items[::2])):
            raise refuse(" (a list or dict as a key, or a key without a value)")
        return items

    try:
        for op, arg, offset in pickletools.genops(io.BytesIO(data)):
            name, pos = op.name, offset  # for refuse()
            if name in _SCALAR_OPS:
                stack.append(_SCALAR)
            elif name == "MARK":
                stack.append(_MARK)
            elif name in ("EMPTY_LIST", "EMPTY_DICT"):
                stack.append(1)
            elif name in ("LIST", "DICT"):
                stack.append(1 + max(pop(None), default=0))
            elif name in ("APPEND", "SETITEM", "APPENDS", "SETITEMS"):
                items = pop({"APPEND": 1, "SETITEM": 2}.get(name))
                if not stack or stack[-1] < 1:
                    raise refuse(" not onto a list or dict")
                stack[-1] = max(stack[-1], 1 + max(items, default=0))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else arg
                if not stack or stack[-1] == _MARK or not 0 <= index <= len(memo):
                    raise refuse(f" (memo index {_show(index)}, {len(memo)} in use)")
                memo[index] = stack[-1]
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if memo.get(arg) != _SCALAR:
                    raise refuse(f" (memo index {_show(arg)}: "
                                 f"{'a list or dict again' if arg in memo else 'never stored'})")
                stack.append(_SCALAR)
            elif name == "STOP":
                if len(stack) != 1 or stack[0] < 1:
                    raise refuse(" (expected one list or dict on the stack)")
            elif name in ("GLOBAL", "INST"):  # arg: "module name"
                raise refuse(f" ({_show(arg.replace(' ', '.', 1))}, a class or function)")
            elif name not in ("PROTO", "FRAME"):
                raise refuse()
            if stack and stack[-1] > MAX_PICKLE_NESTING or len(stack) > MAX_PICKLE_STACK:
                raise refuse(f" (lists and dicts nested over {MAX_PICKLE_NESTING} deep, or over "
                             f"{MAX_PICKLE_STACK} values on the stack)")
    except MemoryError:
        raise DebiaslabError(f"{path}: not a readable pickle (out of memory scanning it)") from None
    except ValueError as err:  # genops: unknown opcode, truncated argument, malformed number
        raise DebiaslabError(f"{path}: not a readable pickle ({_one_line(str(err))}); "
                             f"{WANG_PICKLE}") from None


def read_wang_data(path: Path) -> dict[int, Gender]:
    """Wang et al.'s train.data / val.data / test.data: [{image_id, file_name, objects, gender}]."""
    split = path.stem
    if split not in SPLITS:
        raise DebiaslabError(f"{path}: a .data gender file must be Wang et al.'s train.data, "
                             "val.data or test.data (its name is its split)")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_WANG_BYTES + 1)
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: file not found") from None
    if len(data) > MAX_WANG_BYTES:
        raise DebiaslabError(f"{path}: larger than {MAX_WANG_BYTES:,} bytes; Wang et al.'s .data "
                             "files are about 2 to 10 MB")
    _scan_pickle(data, path)
    try:
        entries = _PlainData(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as err:
        text = _one_line(str(err))
        if "." in text and " " not in text:
            raise DebiaslabError(f"{path}: refused: the file pickles {text}, which is not plain data "
                                 "(Wang et al.'s files hold only lists, dicts, numbers and strings)"
                                 ) from None
        raise DebiaslabError(f"{path}: not a readable pickle ({text})") from None
    except MemoryError:
        raise DebiaslabError(f"{path}: not a readable pickle (out of memory unpickling it)") from None
    except RecursionError:
        raise DebiaslabError(f"{path}: not a readable pickle (nested too deeply)") from None
    except (EOFError, ValueError, TypeError, KeyError, IndexError, AttributeError) as err:
        raise DebiaslabError(f"{path}: not a readable pickle ({type(err).__name__}: "
                             f"{_one_line(str(err))})") from None
    if not isinstance(entries, list):
        raise DebiaslabError(f"{path}: holds a {type(entries).__name__}, expected Wang et al.'s list "
                             "of {image_id, file_name, objects, gender}")
    out: dict[int, Gender] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: entry {i}"
        if not isinstance(entry, dict):
            raise DebiaslabError(f"{where} is a {type(entry).__name__}, expected a dict")
        image_id = _int(entry, "image_id", where)
        gender = entry.get("gender")
        pair = (isinstance(gender, list) and len(gender) == 2
                and all(type(g) is int for g in gender))  # not bool, not a nested list
        if not pair or tuple(gender) not in WANG_GENDER:
            shown = f"[{_show(gender[0])}, {_show(gender[1])}]" if pair else _show(gender)
            raise DebiaslabError(f"{where} (image_id {image_id}): gender is {shown}, expected "
                                 "[1, 0] (man) or [0, 1] (woman)")
        out[image_id] = Gender(WANG_GENDER[tuple(gender)], split, f"{where} (image_id {image_id})",
                               _name(entry, "file_name", where))
    return out


def read_gender_csv(path: Path) -> dict[int, Gender]:
    """A CSV with image_id, gender (male/female) and, optionally, split (train/val/test)."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise DebiaslabError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DebiaslabError(f"{path}: not UTF-8 text; save the gender file as UTF-8 CSV") from None
    except csv.Error as err:
        raise DebiaslabError(f"{path}: not a readable CSV file ({err})") from None
    header = [h.strip() for h in rows[0]] if rows else []
    for name in ("image_id", "gender"):
        if name not in header:
            raise DebiaslabError(f"{path} line 1: no {name!r} column (header: {','.join(header)}); "
                                 "expected image_id,gender[,split]")
    id_col, gender_col = header.index("image_id"), header.index("gender")
    split_col = header.index("split") if "split" in header else None
    out: dict[int, Gender] = {}
    for n, row in enumerate(rows[1:], start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        where = f"{path} line {n}"
        if len(row) != len(header):
            raise DebiaslabError(f"{where}: {len(row)} fields, expected {len(header)}")
        raw_id = row[id_col].strip()
        if not (raw_id.isascii() and raw_id.isdigit()):
            raise DebiaslabError(f"{where}: image_id is {raw_id!r}, expected a COCO image id")
        image_id = int(raw_id)
        gender = row[gender_col].strip().lower()
        if gender not in GENDERS:
            raise DebiaslabError(f"{where}: gender is {row[gender_col]!r}, expected male or female")
        split = None
        if split_col is not None:
            split = row[split_col].strip()
            if split not in SPLITS:
                raise DebiaslabError(f"{where}: split is {split!r}, expected one of "
                                     f"{', '.join(SPLITS)}")
        if image_id in out:
            raise DebiaslabError(f"{where}: image_id {image_id} appears again (first at "
                                 f"{out[image_id].where}); expected one line per image")
        out[image_id] = Gender(GENDERS[gender], split, where)
    return out


def read_genders(paths: list[Path]) -> dict[int, Gender]:
    out: dict[int, Gender] = {}
    for path in paths:
        part = read_wang_data(path) if path.suffix == ".data" else read_gender_csv(path)
        for image_id, gender in part.items():
            if image_id in out:
                raise DebiaslabError(f"{gender.where}: image_id {image_id} appears again (first at "
                                     f"{out[image_id].where}); expected one gender per image")
            out[image_id] = gender
    with_split = {g.split is not None for g in out.values()}
    if len(with_split) > 1:
        raise DebiaslabError("--gender: some files give a split and others do not; give a split "
                             "for every image (a split column, or Wang et al.'s .data files) or none")
    return out


# ------------------------------------------------------------------------------------ table
def columns(instances: list[Instances], exclude: list[str], protected: str) -> dict[int, str]:
    """{category id: column name} over the categories every file shares, minus ``exclude``."""
    first = instances[0]
    for other in instances[1:]:
        if other.categories != first.categories:
            diff = sorted(set(first.categories.items()) ^ set(other.categories.items()))[0]
            raise DebiaslabError(f"{other.path}: categories differ from {first.path.name}'s (first "
                                 f"difference: id {diff[0]}, {diff[1]!r}); expected the same "
                                 "category list in every instances file")
    names = {cat_id: sanitise(name) for cat_id, name in sorted(first.categories.items())}
    known = set(names.values()) | set(first.categories.values())
    for name in exclude:
        if name not in known:
            raise DebiaslabError(f"--exclude {name!r}: not a category of {first.path.name} "
                                 f"(categories: {', '.join(names.values())})")
    out = {i: n for i, n in names.items() if n not in exclude and first.categories[i] not in exclude}
    seen: dict[str, int] = {}
    for cat_id, name in out.items():
        if not name or name in (IMAGE_COLUMN, SPLIT_COLUMN, protected) or name in seen:
            clash = f"category {seen[name]}'s" if name in seen else "a reserved column"
            raise DebiaslabError(f"{first.path}: category {cat_id} ({first.categories[cat_id]!r}) "
                                 f"becomes column {name!r}, which is {clash} name; rename it or "
                                 "--exclude it")
        seen[name] = cat_id
    return out


def assign_splits(instances: list[Instances], genders: dict[int, Gender], seed: int) -> dict[int, str]:
    """{image id: split} for the images with a gender (module docstring)."""
    if any(g.split is not None for g in genders.values()):
        return {i: g.split for i, g in genders.items()}
    if len(instances) != 2:
        raise DebiaslabError("--gender gives no split, so two --instances files are needed: the "
                             "first is train, the second is halved into val and test (or add a "
                             "split column to the gender file)")
    out = {i: "train" for i in instances[0].file_names if i in genders}
    held_out = np.array(sorted(i for i in instances[1].file_names if i in genders), dtype=np.int64)
    order = np.random.default_rng(seed).permutation(held_out)
    half = len(order) // 2
    out.update({int(i): "val" for i in order[:half]})
    out.update({int(i): "test" for i in order[half:]})
    return out


def build_table(instances_paths: list[Path], gender_paths: list[Path], images_root: Path, out: Path,
                *, exclude: list[str] = (), protected: str = "male", seed: int = 0) -> dict:
    """Check every input, then write the table to ``out`` (atomically); returns a summary."""
    if not 1 <= len(instances_paths) <= 2:
        raise DebiaslabError(f"--instances: expected one or two files (train, then the held-out "
                             f"set), got {len(instances_paths)}")
    table_dir = out.parent.absolute()
    root = images_root.absolute()
    if not root.is_dir():
        raise DebiaslabError(f"{images_root}: --images-root folder not found")
    if not root.is_relative_to(table_dir):
        raise DebiaslabError(f"--images-root {images_root} is not inside {table_dir}, the table's "
                             "folder: the table's image paths are relative to its folder (data.root); "
                             "write it into the COCO folder, e.g. --out "
                             f"{images_root / out.name}")
    instances = [read_instances(p) for p in instances_paths]
    owner: dict[int, Instances] = {}
    for inst in instances:
        for image_id in inst.file_names:
            if image_id in owner:
                raise DebiaslabError(f"{inst.path}: image id {image_id} is also in "
                                     f"{owner[image_id].path.name}; expected disjoint image sets")
            owner[image_id] = inst
    genders = read_genders(gender_paths)
    for image_id, gender in genders.items():
        if image_id not in owner:
            raise DebiaslabError(f"{gender.where}: image_id {image_id} is in none of the instances "
                                 f"files ({', '.join(i.path.name for i in instances)})")
        name = owner[image_id].file_names[image_id]
        if gender.file_name is not None and gender.file_name != name:
            raise DebiaslabError(f"{gender.where}: file_name {_show(gender.file_name)}, but "
                                 f"{owner[image_id].path.name} names image {image_id} {name!r}")
    cols = columns(instances, list(exclude), protected)
    splits = assign_splits(instances, genders, seed)
    resolved_dir = table_dir.resolve()
    rows = []
    for image_id in sorted(splits, key=lambda i: (SPLITS.index(splits[i]), i)):
        inst = owner[image_id]
        where = f"{inst.path}: image {image_id}"
        file_name = inst.file_names[image_id]
        check_relative_name(file_name, where, "file_name", f"{inst.image_set}/")
        rel = Path(os.path.relpath(root / inst.image_set / file_name, table_dir)).as_posix()
        if not resolve_inside(resolved_dir, rel, where).is_file():
            raise DebiaslabError(f"{where}: image file {root / inst.image_set / file_name} not found "
                                 f"(expected COCO's layout: <images-root>/{inst.image_set}/<file_name>)")
        have = inst.present[image_id]
        rows.append([rel, splits[image_id], *(int(c in have) for c in cols),
                     genders[image_id].value])
    counts = {s: sum(r[1] == s for r in rows) for s in SPLITS}
    for split, n in counts.items():
        if not n:
            raise DebiaslabError(f"no {split} images with a gender; every split needs some (check "
                                 "the gender files and --instances)")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([IMAGE_COLUMN, SPLIT_COLUMN, *cols.values(), protected])
    writer.writerows(rows)
    with atomic_path(out) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    n_images = sum(len(i.file_names) for i in instances)
    one_valued = []  # train_multilabel needs both values of every label in train and val
    for k, name in enumerate(cols.values()):
        for split in ("train", "val"):
            values = {r[2 + k] for r in rows if r[1] == split}
            if len(values) < 2:
                one_valued.append(f"{name} ({split}: all {values.pop()})")
    return {"table": str(out), "labels": len(cols), "counts": counts,
            protected: {s: sum(r[1] == s and r[-1] == 1 for r in rows) for s in SPLITS},
            "images": n_images, "dropped_without_gender": n_images - len(rows),
            "one_valued": one_valued}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m debiaslab.coco_import",
        description="Write a multi-label table (data.table) from COCO instances files and a "
                    "per-image gender file.")
    ap.add_argument("--instances", action="append", type=Path, required=True,
                    help="instances_<set>.json; twice: train, then the set halved into val/test")
    ap.add_argument("--gender", action="append", type=Path, required=True,
                    help="image_id,gender[,split] CSV, or Wang et al.'s train/val/test.data")
    ap.add_argument("--images-root", type=Path, required=True,
                    help="folder holding <set>/<file_name> (COCO's train2014/, val2014/)")
    ap.add_argument("--out", type=Path, required=True, help="the table, in or above --images-root")
    ap.add_argument("--exclude", action="append", default=[],
                    help="leave out a category (Wang et al. leave out person: 79 labels)")
    ap.add_argument("--protected", default="male",
                    help="name of the gender column, 1 = male (multilabel.protected)")
    ap.add_argument("--seed", type=int, default=0, help="the val/test halving, without a split")
    return ap.parse_args(argv)


@stage_main("coco_import")
def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*", args.protected):
        raise DebiaslabError(f"--protected {args.protected!r}: expected a plain column name")
    s = build_table(args.instances, args.gender, args.images_root, args.out, exclude=args.exclude,
                    protected=args.protected, seed=args.seed)
    print(f"coco_import: {s['table']}: {s['labels']} labels; images train {s['counts']['train']}, "
          f"val {s['counts']['val']}, test {s['counts']['test']} "
          f"({args.protected}=1: {s[args.protected]['train']}, {s[args.protected]['val']}, "
          f"{s[args.protected]['test']}); {s['dropped_without_gender']} of {s['images']} images "
          "dropped (no gender)")
    if s["one_valued"]:
        print(f"warning: coco_import: {len(s['one_valued'])} label(s) of one value in train or val, "
              f"which train_multilabel refuses: {', '.join(s['one_valued'])}; --exclude them",
              file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
