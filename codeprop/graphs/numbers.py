"""Digit-level features of the numeric constants in a ProGraML graph (numpy only).

ProGraML gives every constant its type as text: ``i32 4`` and ``i32 4096`` are the same
node to the model, and so are ``double 0.5`` and ``double 1e6``, although a loop bound or
a scale factor says much about a kernel's work (PerfoGraph, Tehrani et al., 2023, embeds
numbers digit by digit for this reason). Here each scalar integer or floating-point
constant gets its value written in a fixed layout, one character per position:

==========================  ===================  ======================
constant (full text)         value                characters (width 12)
==========================  ===================  ======================
``i32 42``                   42                   ``··········42``
``i64 -1``                   -1                   ``··········-1``
``i1 true``                  1                    ``···········1``
``double 5.000000e-01``      0.5                  ``··5.0000e-01``
``double 0x4000222222222222``  2.0166...          ``··2.0167e+00``
``i64 123456789012345``      1.2346e+14           ``··1.2346e+14``
==========================  ===================  ======================

Integers whose decimal form fits the width are right-aligned, so that a position is a
place value (units, tens, ...); floating-point values and integers too long for the width
use 4-digit scientific notation. ``null`` and ``zeroinitializer`` of a scalar type are 0.
Every other node (instructions, variables, globals, vectors, aggregates, constant
expressions, ``undef``) has no number: all positions are padding (id 0).

`digit_ids` turns these strings into the [N, width] ids that
`codeprop.models.rgcn.RGCNConfig.number_width` embeds.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence

import numpy as np

ALPHABET = "0123456789-+.e"
# Ids: 0 is padding (no character); ALPHABET[i] is i + 1.
NUM_IDS = len(ALPHABET) + 1
_ID = {c: i + 1 for i, c in enumerate(ALPHABET)}

_INT_TYPE = re.compile(r"i\d+$")
_FLOAT_TYPES = frozenset(("half", "bfloat", "float", "double"))
_DECIMAL = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?$")
# LLVM writes float and double constants it cannot print exactly in decimal as the 16 hex
# digits of the IEEE double with the same value (also for ``float``).
_HEX_DOUBLE = re.compile(r"(-?)0x([0-9A-Fa-f]{16})$")
_ZERO_WORDS = frozenset(("null", "zeroinitializer", "false"))


def constant_value(full_text: str) -> int | float | None:
    """The value of a scalar numeric constant from its full text (``<type> <literal>``).

    Returns:
      An int for integer types, a float for ``half``/``bfloat``/``float``/``double``,
      None for anything else (other types, constant expressions, ``undef``, ``poison``,
      x86_fp80 and other hex forms, NaN and infinities).
    """
    kind, _, literal = full_text.strip().partition(" ")
    literal = literal.strip()
    if _INT_TYPE.match(kind):
        if literal in _ZERO_WORDS:
            return 0
        if literal == "true":
            return 1
        if re.fullmatch(r"-?\d+", literal):
            return int(literal)
        return None
    if kind in _FLOAT_TYPES:
        if literal in _ZERO_WORDS:
            return 0.0
        if _DECIMAL.match(literal):
            value = float(literal)
        else:
            m = _HEX_DOUBLE.match(literal)
            if m is None:
                return None
            value = struct.unpack(">d", bytes.fromhex(m.group(2)))[0]
            value = -value if m.group(1) else value
        return value if math.isfinite(value) else None
    return None


def number_text(value: int | float | None, width: int) -> str:
    """The characters of one value (see the module docstring); "" for None.

    Raises:
      ValueError: `width` is below 10, the length of the scientific form ``-d.dddde+XX``
        without its sign.
    """
    if width < 10:
        raise ValueError(f"number width must be at least 10, not {width}")
    if value is None:
        return ""
    if isinstance(value, int) and len(str(value)) <= width:
        return str(value)
    text = f"{float(value):.4e}"
    # Three-digit exponents (1e+100) do not fit 10 characters: drop the mantissa's last
    # digits, which keeps the order of magnitude, the most telling part.
    while len(text) > width:
        mantissa, exponent = text.split("e")
        text = f"{mantissa[:-1]}e{exponent}"
    return text


def number_texts(full_texts: Sequence[str], node_types: Sequence[int], constant: int, width: int):
    """[N] `number_text` of each node: its constant value where its type is `constant`."""
    return [
        number_text(constant_value(t) if k == constant else None, width)
        for t, k in zip(full_texts, node_types, strict=True)
    ]


def digit_ids(texts: Sequence[str], width: int) -> np.ndarray:
    """[N, width] int32 character ids (0: padding), each text right-aligned.

    Raises:
      ValueError: a text is longer than `width` or has a character outside `ALPHABET`.
    """
    out = np.zeros((len(texts), width), np.int32)
    for row, text in enumerate(texts):
        if len(text) > width:
            raise ValueError(f"number {text!r} is longer than the width {width}")
        try:
            if text:
                out[row, width - len(text) :] = [_ID[c] for c in text]
        except KeyError as e:
            raise ValueError(f"number {text!r} has a character outside {ALPHABET!r}") from e
    return out
