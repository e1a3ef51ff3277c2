"""Statement-level node texts for ProGraML graphs (numpy-free, pure string work).

ProGraML's own node ``text`` is short: an instruction's opcode (``load``, ``call``), a
variable's or constant's type (``i32``, ``ptr``). Two loads of different types, or a call
of ``sqrt`` and a call of ``printf``, then look alike to the model. `normalise` turns a
node's full text (the instruction as printed, the typed value, a global's definition) into
a statement in the spirit of inst2vec (Ben-Nun et al., 2018): types, opcodes, flags and
the names of functions declared outside the module (library calls, OpenCL built-ins,
intrinsics) are kept; what is particular to one program is replaced by a placeholder.

==========================  =================  ==================================
what                        example            becomes
==========================  =================  ==================================
local values, labels        ``%12``, ``%i``    ``<%ID>``
named struct types          ``%struct.node``   ``<%TYPE>``
globals, defined functions  ``@a``, ``@f``     ``<@ID>``
external functions          ``@_Z4sqrtf``      kept
integers                    ``42``, ``-1``     ``<INT>`` (lengths, alignments kept)
floating-point literals     ``1.0e+00``        ``<FLOAT>``
string literals             ``c"%d\\00"``       ``<STRING>``
metadata attachments        ``, !tbaa !5``     dropped
attribute groups            ``#3``             dropped
==========================  =================  ==================================

``%x = add nsw i32 %a, 1`` becomes ``<%ID> = add nsw i32 <%ID>, <INT>``; the variable
``i32 %a`` becomes ``i32 <%ID>``. Pointer types are kept as written (``float*`` in typed
IR, ``ptr`` in opaque IR): a vocabulary is built per data set, whose IR is of one dialect.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable

LOCAL = "<%ID>"
TYPE = "<%TYPE>"
GLOBAL = "<@ID>"
INT = "<INT>"
FLOAT = "<FLOAT>"
STRING = "<STRING>"

_NAME = r'(?:[-a-zA-Z$._0-9]+|"[^"]*")'
_PATTERN = re.compile(
    r"(?P<kept>\balign \d+)"
    r'|(?P<string>c"[^"]*")'
    r"|(?P<attachment>,\s*![-a-zA-Z$._0-9]+\s+!(?:\d+|\{[^}]*\}))"
    r"|(?P<metadata>!(?:\d+|\{[^}]*\}))"
    r"|(?P<attribute>#\d+)"
    r'|(?P<type>%(?:"(?:struct|class|union)\.[^"]*"|(?:struct|class|union)\.[-a-zA-Z$._0-9]+))'
    rf"|(?P<local>%{_NAME})"
    rf"|(?P<global>@{_NAME})"
    r"|(?P<float>(?<![\w.])-?(?:0x[KLMHR]?[0-9A-Fa-f]+|\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+))"
    r"|(?P<int>(?<![\w.\"])-?\d+(?![\w.]|\s+x\s))"
)


def normalise(text: str, keep: Container[str] = ()) -> str:
    """The statement text of one node (see the module docstring).

    Args:
      text: the node's full text as `codeprop.graphs.programl.ProgramGraph` keeps it.
      keep: global names (``@printf``) to keep as written: the module's declared functions.

    Returns:
      The normalised text; ``""`` stays ``""``.
    """

    def replace(m: re.Match) -> str:
        kind = m.lastgroup
        if kind == "global":
            return m.group() if m.group() in keep else GLOBAL
        if kind == "kept":
            return m.group()
        return _REPLACEMENTS[kind]

    return _PATTERN.sub(replace, text)


_REPLACEMENTS = {
    "string": STRING,
    "attachment": "",
    "metadata": "!<MD>",
    "attribute": "",
    "type": TYPE,
    "local": LOCAL,
    "float": FLOAT,
    "int": INT,
}


# Local names other than named types: replacing each by one name ("%0") leaves `normalise`'s
# result unchanged and makes instructions that differ only in their locals share a key.
_LOCAL_NAME = re.compile(r"%(?!(?:struct|class|union)\.)[-a-zA-Z$._0-9]+")


def normalise_all(texts: Iterable[str], keep: Container[str] = ()) -> list[str]:
    """`normalise` over many texts (trailing blanks stripped), each distinct text up to
    its local names normalised once."""
    by_text: dict[str, str] = {}
    by_key: dict[str, str] = {}
    out = []
    for text in texts:
        result = by_text.get(text)
        if result is None:
            key = _LOCAL_NAME.sub("%0", text)
            result = by_key.get(key)
            if result is None:
                result = by_key[key] = normalise(key, keep).rstrip()
            by_text[text] = result
        out.append(result)
    return out
