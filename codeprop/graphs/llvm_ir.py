"""A fast reader of textual LLVM IR: functions, blocks, instructions and their operands.

ProGraML graphs need, for every instruction, its opcode, its operands with their LLVM
operand positions and kinds (instruction result, argument, constant, function, block), its
result type and its control successors. Walking a module through llvmlite's API costs about
30 ms for a devmap kernel; reading the same facts from the text costs a tenth of that, so
this module tokenises the printed IR itself. `validate` parses the text with llvmlite (LLVM
22) first, so malformed IR is still rejected by LLVM's own reader.

Both LLVM dialects in our data are read: the typed-pointer IR of older clangs (``i32*``,
``; <label>:12:`` block comments; devmap's NCC IR from LLVM 6) and the opaque-pointer IR of
clang 22 (``ptr``). Operands follow the older semantics where they differ, as ProGraML
(LLVM 10) saw them: a ``shufflevector`` mask is operand 2, an ``alloca`` without an explicit
count has the constant ``i32 1`` as operand 0.

Types come in two spellings: ``raw`` as written, and ``text`` with every pointer type
normalised to ``ptr`` (or ``ptr addrspace(N)``), so both dialects share one vocabulary.
"""

from __future__ import annotations

import dataclasses
import re

# Operand kinds.
VALUE = "value"  # The result of an instruction.
ARGUMENT = "argument"
CONSTANT = "constant"  # Literals, constant expressions and global variables.
FUNCTION = "function"
BLOCK = "block"
IGNORED = "ignored"  # Inline assembly and metadata.

_TOKEN = re.compile(
    r'c?"[^"]*"'
    r'|[%@!](?:[-a-zA-Z$._0-9]+|"[^"]*")'
    r"|!|#\d+"
    r"|-?0x[KLMHR]?[0-9A-Fa-f]+"
    r"|-?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?"
    r"|[A-Za-z_$.][-A-Za-z0-9_$.]*"
    r"|\.\.\.|[()\[\]{}<>,=*:|]"
)

_OPEN = frozenset("([{<")
_CLOSE = frozenset(")]}>")
_SIMPLE_TYPES = frozenset(
    (
        "void",
        "half",
        "bfloat",
        "float",
        "double",
        "x86_fp80",
        "fp128",
        "ppc_fp128",
        "label",
        "metadata",
        "token",
        "x86_amx",
        "x86_mmx",
        "ptr",
        "opaque",
    )
)
_INT_TYPE = re.compile(r"i\d+$")
_CONSTANT_WORDS = frozenset(
    (
        "true",
        "false",
        "null",
        "none",
        "undef",
        "poison",
        "zeroinitializer",
    )
)
_BINARY = frozenset(
    (
        "add",
        "sub",
        "mul",
        "udiv",
        "sdiv",
        "urem",
        "srem",
        "shl",
        "lshr",
        "ashr",
        "and",
        "or",
        "xor",
        "fadd",
        "fsub",
        "fmul",
        "fdiv",
        "frem",
    )
)
_CASTS = frozenset(
    (
        "trunc",
        "zext",
        "sext",
        "fptrunc",
        "fpext",
        "fptoui",
        "fptosi",
        "uitofp",
        "sitofp",
        "ptrtoint",
        "inttoptr",
        "bitcast",
        "addrspacecast",
    )
)
# Constant expressions: every cast and binary operator, and these.
_CONSTANT_EXPRS = (
    _CASTS
    | _BINARY
    | frozenset(
        (
            "getelementptr",
            "select",
            "icmp",
            "fcmp",
            "extractelement",
            "insertelement",
            "shufflevector",
            "extractvalue",
            "insertvalue",
            "fneg",
            "splat",
            "blockaddress",
            "dso_local_equivalent",
            "no_cfi",
            "ptrauth",
        )
    )
)
_FLAGS = frozenset(
    (
        "nuw",
        "nsw",
        "exact",
        "disjoint",
        "nneg",
        "samesign",
        "inbounds",
        "nusw",
        "fast",
        "nnan",
        "ninf",
        "nsz",
        "arcp",
        "contract",
        "afn",
        "reassoc",
        "volatile",
        "atomic",
        "weak",
    )
)
_CALL_PREFIXES = frozenset(("tail", "musttail", "notail"))
_VECTOR = re.compile(r"<(?:vscale x )?(\d+) x (.+)>$")
_LABEL = re.compile(r'^(?:([-a-zA-Z$._0-9]+|"[^"]*"):|; <label>:(\d+):?)')
_DEFINE = re.compile(r"^(define|declare)\b")


class IRError(ValueError):
    """IR that this reader (or LLVM) cannot read; the message names the problem."""


@dataclasses.dataclass
class Instruction:
    """One instruction.

    Attributes:
      opcode: e.g. ``load``, ``br``, ``call``.
      text: the instruction as written (one line; switch cases joined).
      result: the name it defines (``%12``), or None.
      result_type: the normalised type of the result (``ptr``, ``i32``), or None.
      raw_result_type: the result type as written.
      operands: (position, kind, key, text, full_text) per data operand: position is the
        LLVM operand index; key identifies the value (``%x``, ``@g``, or the constant's
        typed text); text is its normalised type; full_text the typed value as written.
      successors: labels of the successor blocks, in LLVM successor order.
      callee: the function a ``call`` calls directly (``@f``), or None.
    """

    opcode: str
    text: str
    result: str | None
    result_type: str | None
    raw_result_type: str | None
    operands: list[tuple[int, str, str, str, str]]
    successors: list[str]
    callee: str | None


@dataclasses.dataclass
class Function:
    """A defined or declared function: arguments (name, text, raw type) and blocks."""

    name: str
    declaration: bool
    arguments: list[tuple[str, str, str]]
    blocks: list[tuple[str | None, list[Instruction]]]


@dataclasses.dataclass
class Module:
    """Functions in module order, global definitions (name -> line) and named types."""

    name: str
    functions: list[Function]
    globals: dict[str, str]
    struct_types: dict[str, str]


def validate(text: str) -> None:
    """Parses `text` with llvmlite (LLVM's own reader).

    Old IR that LLVM 22 no longer accepts as written is upgraded first where the upgrade is
    mechanical: ``T* byval`` parameters get their type (``byval(T)``).

    Raises:
      IRError: LLVM rejects the IR; the message is LLVM's.
    """
    import llvmlite.binding as llvm  # Imported here: reading IR text does not need LLVM.

    try:
        llvm.parse_assembly(text)
    except RuntimeError as first:
        upgraded = _upgrade_legacy(text)
        if upgraded == text:
            raise IRError(str(first).replace("LLVM IR parsing error\n", "")) from None
        try:
            llvm.parse_assembly(upgraded)
        except RuntimeError as second:
            raise IRError(str(second).replace("LLVM IR parsing error\n", "")) from None


_BYVAL = re.compile(r"((?:%[-a-zA-Z$._0-9\"]+|[a-z0-9]+)\*) byval(?!\()")


def _upgrade_legacy(text: str) -> str:
    return _BYVAL.sub(lambda m: f"{m.group(1)} byval({m.group(1)[:-1]})", text)


def normalise_pointers(type_text: str) -> str:
    """``i32*`` -> ``ptr``, ``float addrspace(1)*`` -> ``ptr addrspace(1)``, recursively."""
    return _Parser(tokenize(type_text), {}).parse_type()[0]


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class _Parser:
    """Recursive descent over the tokens of one instruction (or a type)."""

    __slots__ = ("toks", "i", "structs")

    def __init__(self, toks: list[str], structs: dict[str, str]):
        self.toks = toks
        self.i = 0
        self.structs = structs

    def peek(self) -> str:
        return self.toks[self.i] if self.i < len(self.toks) else ""

    def take(self) -> str:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        if self.peek() != tok:
            raise IRError(f"expected {tok!r}, found {self.peek()!r}")
        self.i += 1

    def skip_balanced(self) -> int:
        """Skips a bracketed group starting at the current token; returns its start."""
        start = self.i
        depth = 0
        while self.i < len(self.toks):
            tok = self.toks[self.i]
            self.i += 1
            if tok in _OPEN:
                depth += 1
            elif tok in _CLOSE:
                depth -= 1
                if depth == 0:
                    return start
        raise IRError("unbalanced brackets")

    # Types -------------------------------------------------------------------------------

    def parse_type(self, function_suffix: bool = True) -> tuple[str, str]:
        """(normalised text, raw text) of the type at the cursor."""
        tok = self.take()
        if tok in _SIMPLE_TYPES or _INT_TYPE.match(tok):
            text = raw = tok
            if tok == "ptr" and self.peek() == "addrspace":
                space = self._addrspace()
                text = raw = f"ptr addrspace({space})"
        elif tok[0] == "%":
            text = raw = tok
        elif tok == "<" or tok == "[":
            close = ">" if tok == "<" else "]"
            if tok == "<" and self.peek() == "{":  # Packed struct <{ ... }>.
                inner_text, inner_raw = self._struct_body()
                self.expect(">")
                text, raw = f"<{inner_text}>", f"<{inner_raw}>"
            else:
                prefix = ""
                if self.peek() == "vscale":
                    self.take()
                    self.expect("x")
                    prefix = "vscale x "
                count = self.take()
                self.expect("x")
                elem_text, elem_raw = self.parse_type()
                self.expect(close)
                text = f"{tok}{prefix}{count} x {elem_text}{close}"
                raw = f"{tok}{prefix}{count} x {elem_raw}{close}"
        elif tok == "{":
            self.i -= 1
            text, raw = self._struct_body()
        else:
            raise IRError(f"expected a type, found {tok!r}")
        while True:
            nxt = self.peek()
            if nxt == "*":
                self.take()
                text, raw = "ptr", raw + "*"
            elif nxt == "addrspace" and text != "ptr" and not text.startswith("ptr "):
                space = self._addrspace()
                self.expect("*")
                text, raw = f"ptr addrspace({space})", f"{raw} addrspace({space})*"
            elif nxt == "(" and function_suffix:
                params_text, params_raw = self._function_params()
                text, raw = f"{text} ({params_text})", f"{raw} ({params_raw})"
            else:
                return text, raw

    def _addrspace(self) -> str:
        self.expect("addrspace")
        self.expect("(")
        space = self.take()
        self.expect(")")
        return space

    def _type_list(self, open_: str, close: str) -> tuple[str, str]:
        """Comma-separated types (or ``...``) between `open_` and `close`, joined."""
        self.expect(open_)
        texts, raws = [], []
        while self.peek() != close:
            if self.peek() == "...":
                self.take()
                t = r = "..."
            else:
                t, r = self.parse_type()
            texts.append(t)
            raws.append(r)
            if self.peek() == ",":
                self.take()
        self.take()
        return ", ".join(texts), ", ".join(raws)

    def _struct_body(self) -> tuple[str, str]:
        text, raw = self._type_list("{", "}")
        return ("{ " + text + " }", "{ " + raw + " }") if text else ("{}", "{}")

    def _function_params(self) -> tuple[str, str]:
        return self._type_list("(", ")")

    # Values ------------------------------------------------------------------------------

    def parse_value(self) -> tuple[str, str]:
        """(kind, key) of the value at the cursor; kind is VALUE (a local name, resolved
        later), ``global`` (an @ name, resolved later), CONSTANT or IGNORED."""
        tok = self.take()
        first = tok[0]
        if first == "%":
            return VALUE, tok
        if first == "@":
            return "global", tok
        if (
            first.isdigit()
            or first == "-"
            or tok in _CONSTANT_WORDS
            or first == "c"
            and (tok.startswith('c"'))
        ):
            return CONSTANT, tok
        if tok in ("<", "[", "{"):  # Vector, array, struct or packed struct constant.
            self.i -= 1
            start = self.skip_balanced()
            return CONSTANT, " ".join(self.toks[start : self.i])
        if tok in _CONSTANT_EXPRS:
            start = self.i - 1
            while self.peek() != "(":
                if self.i >= len(self.toks):
                    raise IRError(f"malformed constant expression {tok!r}")
                self.i += 1
                if self.toks[self.i - 1] == "inrange" and self.peek() == "(":
                    self.skip_balanced()  # inrange(-16, 24) qualifies the operands' group.
            self.skip_balanced()
            return CONSTANT, " ".join(self.toks[start : self.i])
        if tok == "asm":
            while self.peek() in ("sideeffect", "alignstack", "inteldialect", "unwind"):
                self.take()
            self.take()  # Assembly string.
            self.expect(",")
            self.take()  # Constraints.
            return IGNORED, "asm"
        if first == "!":
            if self.peek() == "{" or self.peek() == "(":
                self.skip_balanced()
            return IGNORED, tok
        raise IRError(f"expected a value, found {tok!r}")

    def typed_value(self) -> tuple[str, str, str, str]:
        """(kind, key, type text, raw type) of ``<type> <value>`` at the cursor."""
        text, raw = self.parse_type()
        if text == "metadata":
            self._skip_to_comma()
            return IGNORED, "metadata", text, raw
        self._skip_attributes()
        kind, key = self.parse_value()
        return kind, key, text, raw

    def _skip_attributes(self) -> None:
        """Skips parameter attributes between a type and its value (``noundef``,
        ``align 4``, ``byval(%T)``, ``captures(none)``, ...)."""
        while True:
            tok = self.peek()
            if not tok or not tok[0].isalpha() or tok in _CONSTANT_WORDS:
                return
            if tok in _CONSTANT_EXPRS or tok == "asm" or tok.startswith('c"'):
                return
            self.i += 1
            nxt = self.peek()
            if nxt == "(":
                self.skip_balanced()
            elif tok in ("align", "dereferenceable", "dereferenceable_or_null") and (
                nxt[:1].isdigit()
            ):
                self.i += 1

    def _skip_to_comma(self) -> None:
        depth = 0
        while self.i < len(self.toks):
            tok = self.toks[self.i]
            if depth == 0 and tok in (",", ")"):
                return
            if tok in _OPEN:
                depth += 1
            elif tok in _CLOSE:
                depth -= 1
            self.i += 1

    def skip_flags(self) -> None:
        while self.peek() in _FLAGS:
            self.take()


def _vector_length(type_text: str) -> str | None:
    m = _VECTOR.match(type_text)
    return m.group(1) if m else None


def _element_type(type_text: str) -> str:
    m = _VECTOR.match(type_text)
    if not m:
        raise IRError(f"expected a vector type, found {type_text!r}")
    return m.group(2)


def _member_type(aggregate: str, indices: list[str], structs: dict[str, str]) -> str:
    """The type of ``extractvalue`` on `aggregate` at `indices` (normalised text)."""
    current = aggregate
    for index in indices:
        if current in structs:
            current = structs[current]
        p = _Parser(tokenize(current), structs)
        if current.startswith("["):
            p.take()
            p.take()
            p.expect("x")
            current = p.parse_type()[0]
            continue
        if current.startswith("<{"):
            p.take()
        members = []
        p.expect("{")
        while p.peek() != "}":
            members.append(p.parse_type()[0])
            if p.peek() == ",":
                p.take()
        current = members[int(index)]
    return current


def _parse_instruction(toks: list[str], line: str, structs: dict[str, str]) -> Instruction:
    result = None
    if len(toks) > 2 and toks[1] == "=" and toks[0][0] == "%":
        result = toks[0]
        p = _Parser(toks, structs)
        p.i = 2
    else:
        p = _Parser(toks, structs)
    opcode = p.take()
    if opcode in _CALL_PREFIXES:
        opcode = p.take()
    operands: list = []
    successors: list[str] = []
    result_type = raw_result_type = None
    callee = None

    def add(position, kind, key, text, raw):
        operands.append((position, kind, key, text, raw))

    def same_type_pair() -> tuple[str, str]:
        """``<type> a, b``: two operands sharing one written type; returns the type."""
        text, raw = p.parse_type()
        add(0, *p.parse_value(), text, raw)
        p.expect(",")
        add(1, *p.parse_value(), text, raw)
        return text, raw

    if opcode in _BINARY:
        p.skip_flags()
        result_type, raw_result_type = same_type_pair()
    elif opcode == "load":
        p.skip_flags()
        result_type, raw_result_type = p.parse_type()
        p.expect(",")
        add(0, *p.typed_value())
    elif opcode == "store":
        p.skip_flags()
        add(0, *p.typed_value())
        p.expect(",")
        add(1, *p.typed_value())
    elif opcode == "getelementptr":
        while p.peek() in _FLAGS or p.peek() == "inrange":
            if p.take() == "inrange" and p.peek() == "(":
                p.skip_balanced()
        p.parse_type()
        p.expect(",")
        position = 0
        vector = None
        while True:
            op = p.typed_value()
            add(position, *op)
            vector = vector or _vector_length(op[2])
            position += 1
            if p.peek() != ",":
                break
            p.take()
            if p.peek().startswith("!"):
                break
        base = operands[0][3]  # A pointer (or vector of pointers): pointee types are
        # not tracked, so the raw spelling is the normalised one.
        result_type = raw_result_type = f"<{vector} x {base}>" if vector else base
    elif opcode in _CASTS:
        p.skip_flags()
        add(0, *p.typed_value())
        p.expect("to")
        result_type, raw_result_type = p.parse_type()
    elif opcode in ("icmp", "fcmp"):
        p.skip_flags()
        p.take()  # Predicate.
        n = _vector_length(same_type_pair()[0])
        result_type = raw_result_type = f"<{n} x i1>" if n else "i1"
    elif opcode == "br":
        if p.peek() == "label":
            p.take()
            successors.append(p.take())
        else:
            add(0, *p.typed_value())
            p.expect(",")
            p.expect("label")
            true_dest = p.take()
            p.expect(",")
            p.expect("label")
            successors.extend((true_dest, p.take()))
    elif opcode == "ret":
        if p.peek() != "void":
            add(0, *p.typed_value())
    elif opcode in ("call", "invoke"):
        callee = _parse_call(p, opcode, add, successors)
        result_type, raw_result_type = callee[1], callee[2]
        callee = callee[0] if opcode == "call" else None
        if result_type == "void":
            result_type = raw_result_type = None
    elif opcode == "alloca":
        p.skip_flags()
        if p.peek() == "inalloca":
            p.take()
        p.parse_type()
        explicit = False
        space = None
        while p.peek() == ",":
            p.take()
            nxt = p.peek()
            if nxt == "align":
                p.take()
                p.take()
            elif nxt == "addrspace":
                space = p._addrspace()
            elif nxt.startswith("!"):
                break
            else:
                add(0, *p.typed_value())
                explicit = True
        if not explicit:
            add(0, CONSTANT, "1", "i32", "i32")
        result_type = raw_result_type = f"ptr addrspace({space})" if space else "ptr"
    elif opcode == "phi":
        p.skip_flags()
        result_type, raw_result_type = p.parse_type()
        position = 0
        while p.peek() == "[":
            p.take()
            kind, key = p.parse_value()
            add(position, kind, key, result_type, raw_result_type)
            p.expect(",")
            p.take()  # Incoming block.
            p.expect("]")
            position += 1
            if p.peek() != ",":
                break
            p.take()
    elif opcode == "select":
        p.skip_flags()
        add(0, *p.typed_value())
        p.expect(",")
        add(1, *p.typed_value())
        p.expect(",")
        add(2, *p.typed_value())
        result_type, raw_result_type = operands[1][3], operands[1][4]
    elif opcode == "switch":
        add(0, *p.typed_value())
        p.expect(",")
        p.expect("label")
        successors.append(p.take())
        p.expect("[")
        position = 2
        while p.peek() != "]":
            add(position, *p.typed_value())
            p.expect(",")
            p.expect("label")
            successors.append(p.take())
            position += 2
    elif opcode == "extractelement":
        add(0, *p.typed_value())
        p.expect(",")
        add(1, *p.typed_value())
        result_type = _element_type(operands[0][3])
        raw_result_type = _element_type(operands[0][4])
    elif opcode == "insertelement":
        for position in range(3):
            if position:
                p.expect(",")
            add(position, *p.typed_value())
        result_type, raw_result_type = operands[0][3], operands[0][4]
    elif opcode == "shufflevector":
        for position in range(3):
            if position:
                p.expect(",")
            add(position, *p.typed_value())
        n = _vector_length(operands[2][3])
        result_type = f"<{n} x {_element_type(operands[0][3])}>"
        raw_result_type = f"<{n} x {_element_type(operands[0][4])}>"
    elif opcode == "extractvalue":
        add(0, *p.typed_value())
        indices = []
        while p.peek() == ",":
            p.take()
            if p.peek().startswith("!"):
                break
            indices.append(p.take())
        result_type = raw_result_type = _member_type(operands[0][3], indices, structs)
    elif opcode == "insertvalue":
        add(0, *p.typed_value())
        p.expect(",")
        add(1, *p.typed_value())
        result_type, raw_result_type = operands[0][3], operands[0][4]
    elif opcode in ("unreachable", "fence"):
        pass
    elif opcode in ("fneg", "freeze"):
        p.skip_flags()
        add(0, *p.typed_value())
        result_type, raw_result_type = operands[0][3], operands[0][4]
    elif opcode == "va_arg":
        add(0, *p.typed_value())
        p.expect(",")
        result_type, raw_result_type = p.parse_type()
    elif opcode == "atomicrmw":
        p.skip_flags()
        p.take()  # Operation.
        add(0, *p.typed_value())
        p.expect(",")
        add(1, *p.typed_value())
        result_type, raw_result_type = operands[1][3], operands[1][4]
    elif opcode == "cmpxchg":
        p.skip_flags()
        for position in range(3):
            if position:
                p.expect(",")
            add(position, *p.typed_value())
        result_type = "{ " + operands[1][3] + ", i1 }"
        raw_result_type = "{ " + operands[1][4] + ", i1 }"
    elif opcode == "landingpad":
        result_type, raw_result_type = p.parse_type()
        position = 0
        while p.i < len(p.toks):
            clause = p.take()
            if clause in ("catch", "filter"):
                add(position, *p.typed_value())
                position += 1
    elif opcode == "resume":
        add(0, *p.typed_value())
    elif opcode == "indirectbr":
        add(0, *p.typed_value())
        p.expect(",")
        p.expect("[")
        while p.peek() != "]":
            p.expect("label")
            successors.append(p.take())
            if p.peek() == ",":
                p.take()
    else:
        raise IRError(f"unsupported instruction {opcode!r}")
    return Instruction(
        opcode, line.strip(), result, result_type, raw_result_type, operands, successors, callee
    )


_OLD_MEM_INTRINSIC = re.compile(r"@llvm\.mem(?:cpy|move|set)\.")
_CALL_ATTRIBUTE_ARGS = frozenset(("align", "dereferenceable", "dereferenceable_or_null", "cc"))


def _parse_call(p: _Parser, opcode: str, add, successors: list[str]):
    """Parses a call or invoke after its opcode; returns (callee @name or None, result
    text, raw result type)."""
    p.skip_flags()
    # Calling convention and return attributes: words (with arguments) before the type.
    while True:
        tok = p.peek()
        if tok in _SIMPLE_TYPES or _INT_TYPE.match(tok) or tok[:1] in ("%", "<", "[", "{"):
            break
        p.take()
        if p.peek() == "(":
            p.skip_balanced()
        elif tok in _CALL_ATTRIBUTE_ARGS and p.peek()[:1].isdigit():
            p.take()
    result_type, raw_result_type = p.parse_type(function_suffix=False)
    if p.peek() == "(":  # Explicit function type: skip its parameter list.
        p.skip_balanced()
    kind, key = p.parse_value()
    p.expect("(")
    args = []
    while p.peek() != ")":
        args.append(p.typed_value())
        if p.peek() == ",":
            p.take()
    p.take()
    if len(args) == 5 and _OLD_MEM_INTRINSIC.match(key):
        del args[3]  # LLVM < 7 passed the alignment as an argument; LLVM's reader upgrades.
    for position, arg in enumerate(args):
        add(position, *arg)
    callee_position = len(args)
    if opcode == "invoke":
        while p.peek() != "to":
            p.take()
        p.take()
        p.expect("label")
        normal = p.take()
        p.expect("unwind")
        p.expect("label")
        successors.extend((normal, p.take()))
        callee_position += 2
    callee_type = "ptr"
    add(callee_position, kind, key, callee_type, callee_type)
    return (key if kind == "global" else None), result_type, raw_result_type


_PARAMS_START = re.compile(r'@(?:[-a-zA-Z$._0-9]+|"[^"]*")\(')


def _parse_header(line: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Name and (name, text, raw type) arguments of a ``define`` or ``declare`` line."""
    m = _PARAMS_START.search(line)
    if not m:
        raise IRError(f"malformed function header: {line[:120]}")
    name = m.group(0)[:-1]
    p = _Parser(tokenize(line[m.end() - 1 :]), {})
    p.expect("(")
    arguments = []
    unnamed = 0
    while p.peek() != ")":
        if p.peek() == "...":
            p.take()
            continue
        text, raw = p.parse_type()
        arg_name = None
        while p.peek() not in (",", ")"):
            tok = p.take()
            if tok[0] == "%":
                arg_name = tok
            elif p.peek() == "(":
                p.skip_balanced()
            elif tok in _CALL_ATTRIBUTE_ARGS and p.peek()[:1].isdigit():
                p.take()
        if arg_name is None:
            arg_name = f"%{unnamed}"
            unnamed += 1
        arguments.append((arg_name, text, raw))
        if p.peek() == ",":
            p.take()
    return name, arguments


_RESULT = re.compile(r'^  (%(?:[-a-zA-Z$._0-9]+|"[^"]*")) = ')


def read(text: str, name: str = "") -> Module:
    """Reads textual LLVM IR (without validating it: see `validate`).

    Raises:
      IRError: a line this reader cannot read; the message gives the line number.
    """
    functions: list[Function] = []
    globals_: dict[str, str] = {}
    structs: dict[str, str] = {}
    # Instructions that differ only in local names parse alike (80% of devmap's lines):
    # parsed once per module, with the names as placeholders.
    templates: dict[str, Instruction] = {}
    lines = text.splitlines()
    n = len(lines)
    i = 0
    while i < n:
        line = lines[i]
        i += 1
        if not line or line[0] == ";" or line[0] == " ":
            continue
        if line[0] == "@":
            globals_[line.split(" ", 1)[0]] = line
            continue
        if line[0] == "%" and " = type " in line:
            type_name, body = line.split(" = type ", 1)
            if body.strip() != "opaque":
                structs[type_name] = _Parser(tokenize(body), structs).parse_type()[0]
            continue
        if not _DEFINE.match(line):
            continue
        try:
            fn_name, arguments = _parse_header(line)
        except (IRError, IndexError) as e:
            raise IRError(f"line {i}: {e}") from None
        if line.startswith("declare"):
            functions.append(Function(fn_name, True, arguments, []))
            continue
        i, body = _read_body(lines, i)
        local = {a[0] for a in arguments}
        for label, block in body:
            if label is not None:
                local.add(label)
            for _, ins_line in block:
                m = _RESULT.match(ins_line)
                if m:
                    local.add(m.group(1))
        blocks = [
            (
                label,
                [
                    _read_instruction(number, ins_line, local, structs, templates)
                    for number, ins_line in block
                ],
            )
            for label, block in body
        ]
        functions.append(Function(fn_name, False, arguments, blocks))
    return Module(name, functions, globals_, structs)


def _read_body(lines: list[str], i: int):
    """Blocks of a function body starting at line `i`: [(label, [(line number, text)])],
    with continuation lines joined; returns (next line index, blocks)."""
    n = len(lines)
    blocks: list = []
    label: str | None = None
    block: list[tuple[int, str]] = []
    while i < n:
        line = lines[i]
        i += 1
        if line.startswith("}"):
            break
        if line.startswith("  "):
            if line.startswith("   ") or line.strip() == "]":
                # Continuation: switch cases and their closing bracket, landingpad clauses.
                if not block:
                    raise IRError(f"line {i}: unexpected continuation line")
                number, previous = block[-1]
                block[-1] = (number, previous + " " + line.strip())
            elif not line.lstrip().startswith(";"):
                block.append((i, line))
            continue
        m = _LABEL.match(line)
        if m:
            if block:
                blocks.append((label, block))
            elif label is not None:
                raise IRError(f"line {i}: empty block {label}")
            label = "%" + (m.group(1) or m.group(2))
            block = []
    if block:
        blocks.append((label, block))
    return i, blocks


_LOCAL_REF = re.compile(r"(%[-a-zA-Z$._0-9]+)")
_PLACEHOLDER = '%"\x00'


@dataclasses.dataclass
class _Template:
    """A parsed instruction with local names as numbered placeholders."""

    instruction: Instruction
    result_slot: int
    operand_slots: list[int]
    successor_slots: list[int]


def _slot(token: str | None) -> int:
    if token is not None and token.startswith(_PLACEHOLDER):
        return int(token[len(_PLACEHOLDER) : -1])
    return -1


def _read_instruction(number, line, local, structs, templates) -> Instruction:
    """Parses one instruction, through the module's template cache when it can."""
    if '"' in line:  # Quoted names or string literals: parse as written.
        return _parse(tokenize(line), number, line, structs)
    parts = _LOCAL_REF.split(line)
    names = []
    for k in range(1, len(parts), 2):
        name = parts[k]
        if name in local:
            parts[k] = f'{_PLACEHOLDER}{len(names)}"'
            names.append(name)
    key = "".join(parts)
    template = templates.get(key)
    if template is None:
        ins = _parse(tokenize(key), number, line, structs)
        template = templates[key] = _Template(
            ins,
            _slot(ins.result),
            [_slot(op[2]) for op in ins.operands],
            [_slot(label) for label in ins.successors],
        )
    ins = template.instruction
    return Instruction(
        ins.opcode,
        line.strip(),
        names[template.result_slot] if template.result_slot >= 0 else ins.result,
        ins.result_type,
        ins.raw_result_type,
        [
            (op[0], op[1], names[slot], op[3], op[4]) if slot >= 0 else op
            for op, slot in zip(ins.operands, template.operand_slots)
        ],
        [
            names[slot] if slot >= 0 else label
            for label, slot in zip(ins.successors, template.successor_slots)
        ],
        ins.callee,
    )


def _parse(toks: list[str], number: int, line: str, structs) -> Instruction:
    try:
        return _parse_instruction(toks, line, structs)
    except (IRError, IndexError, ValueError) as e:
        raise IRError(f"line {number}: {e}: {line.strip()[:160]}") from None
