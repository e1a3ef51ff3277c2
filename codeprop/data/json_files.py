"""Reading the JSON and JSONL files a user hands codeprop (configs, checkpoints' side
files, workdir records, samples), with every problem raised as the caller's exception
type and its message naming the file (and line) and the problem: never a bare
`json.JSONDecodeError`, `UnicodeDecodeError` or a later `AttributeError` on a value of
the wrong type.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator


def problem(data: bytes) -> tuple[object, None] | tuple[None, str]:
    """(the JSON value of `data`, None), or (None, what is wrong with it)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        return None, f"not UTF-8 (byte 0x{data[error.start]:02x} at offset {error.start})"
    try:
        return json.loads(text), None
    except json.JSONDecodeError as error:
        return None, f"not JSON ({error.msg} at line {error.lineno} column {error.colno})"
    except RecursionError:
        return None, "not JSON (nested too deeply)"


def read(path: str | os.PathLike, error: type[Exception] = ValueError, kind=None):
    """The JSON value in `path`; any problem raises ``error("<path>: <problem>")``.

    Args:
      kind: the type the value must have (e.g. `dict`), or None for any.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    value, wrong = problem(data)
    if wrong is None and kind is not None and not isinstance(value, kind):
        wrong = f"a JSON {type(value).__name__} where a {_name(kind)} is expected"
    if wrong:
        raise error(f"{path}: {wrong}")
    return value


def read_object(path: str | os.PathLike, error: type[Exception] = ValueError) -> dict:
    """`read` of a file whose value must be a JSON object."""
    return read(path, error, dict)


def lines(
    path: str | os.PathLike, error: type[Exception] = ValueError, kind=dict
) -> Iterator[tuple[int, object]]:
    """(line number, value) of each non-blank line of a JSONL file (``.gz`` too); a line
    that is not a JSON value of type `kind` raises ``error("<path>:<line>: <problem>")``."""
    opener = gzip.open if str(path).endswith(".gz") else open
    try:
        f = opener(path, "rb")
    except OSError as e:
        raise error(f"{path}: cannot be read ({e.strerror or e})") from None
    with f:
        for number, raw in _numbered(f, path, error):
            if not raw.strip():
                continue
            value, wrong = problem(raw)
            if wrong is None and kind is not None and not isinstance(value, kind):
                wrong = f"a JSON {type(value).__name__} where a {_name(kind)} is expected"
            if wrong:
                raise error(f"{path}:{number}: {wrong}")
            yield number, value


def _numbered(f, path, error):
    number = 0
    while True:
        try:
            raw = f.readline()
        except (OSError, EOFError, zlib.error) as e:  # a truncated or corrupt .gz
            raise error(f"{path}: cannot be read after line {number} ({e})") from None
        if not raw:
            return
        number += 1
        yield number, raw


def _name(kind) -> str:
    names = {dict: "JSON object", list: "JSON array", str: "string"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)
