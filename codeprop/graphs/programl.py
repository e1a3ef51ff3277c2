"""ProGraML program graphs from LLVM IR (numpy only; no JAX).

A program graph is the union of a module's control flow, data flow and call graphs, with the
semantics of ProGraML (Cummins et al., ICML 2021) as its ``llvm2graph`` tool builds them:

* Nodes: one per instruction (text: its opcode), variables (text: their type) and
  constants (text: their type; one node per distinct constant or global variable of the
  module), a root node ``[external]``, and one ``; undefined function`` instruction per
  function declared without a body.
* Control edges (flow 0): each instruction to the next one in its block (position 0); a
  block's terminator to the first instruction of each successor, position = successor
  index, for blocks reachable from the function's entry.
* Data edges (flow 1): operand -> instruction, position = the LLVM operand index;
  instruction -> the variable holding its result (position 0). Functions, blocks, inline
  assembly and metadata are not data.
* Call edges (flow 2, position 0): a direct ``call`` -> the callee's first instruction, and
  each of the callee's exits (reachable blocks without successors) -> the call; the root ->
  every function's entry and every exit -> the root.

Variables are per use by default (``per_use=True``): a fresh variable node for every use of
an instruction's result, which reproduces ProGraML exactly; ``per_use=False`` gives one
variable node per value, shared by its uses. Function arguments are one variable each.

Node texts normalise pointer types to ``ptr`` (see `codeprop.graphs.llvm_ir`), so graphs of
typed-pointer IR (devmap's NCC IR) and of clang 22's IR share a vocabulary. Each node also
keeps its full text, from which `ProgramGraph.statement_texts` derives statement-level texts
(`codeprop.graphs.node_text`) for richer node features.

Command line: ``python -m codeprop.main programl INPUT... --out DIR`` writes
``DIR/<input name>.json`` in ProGraML's node-link JSON layout for each C, C++, OpenCL or
``.ll`` input.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
import pathlib
from collections.abc import Iterable, Sequence

import jraph
import numpy as np

from codeprop.graphs import compiler, llvm_ir, node_text, numbers

INSTRUCTION, VARIABLE, CONSTANT = 0, 1, 2
CONTROL, DATA, CALL = 0, 1, 2
NUM_FLOWS = 3
NODE_TYPE_NAMES = ("instruction", "variable", "constant")
FLOW_NAMES = ("control", "data", "call")
ROOT_TEXT = "[external]"
UNDEFINED_FUNCTION_TEXT = "; undefined function"


@dataclasses.dataclass
class ProgramGraph:
    """A program graph as flat arrays.

    Attributes:
      node_type: [N] INSTRUCTION, VARIABLE or CONSTANT.
      node_text: N texts (opcode or type).
      node_function: [N] index into `functions`, -1 for the root and constants.
      node_full_text: N full texts (the instruction, the typed value, a global's line).
      edge_source: [E] source node.
      edge_target: [E] target node.
      edge_flow: [E] CONTROL, DATA or CALL.
      edge_position: [E] position (operand index, successor index or 0).
      functions: function names, module order.
      module: the module name.
      external_functions: the functions declared without a body (``@printf``): their
        names are kept in statement texts (`codeprop.graphs.node_text`).
    """

    node_type: np.ndarray
    node_text: list[str]
    node_function: np.ndarray
    node_full_text: list[str]
    edge_source: np.ndarray
    edge_target: np.ndarray
    edge_flow: np.ndarray
    edge_position: np.ndarray
    functions: list[str]
    module: str = ""
    external_functions: tuple[str, ...] = ()

    @property
    def num_nodes(self) -> int:
        return len(self.node_type)

    @property
    def num_edges(self) -> int:
        return len(self.edge_flow)

    def statement_texts(self) -> list[str]:
        """N node texts at statement level: `codeprop.graphs.node_text.normalise` of each
        full text, with the module's external function names kept."""
        keep = frozenset(self.external_functions)
        texts = node_text.normalise_all(self.node_full_text, keep)
        # The root and undefined-function nodes have no full text: keep their own.
        return [full or short for full, short in zip(texts, self.node_text, strict=True)]

    def number_texts(self, width: int) -> list[str]:
        """N texts of the constants' numeric values (`codeprop.graphs.numbers`), "" for
        every other node."""
        return numbers.number_texts(self.node_full_text, self.node_type, CONSTANT, width)

    def to_graphs_tuple(self, statements: bool = False, number_width: int = 0) -> jraph.GraphsTuple:
        """A single-graph numpy `jraph.GraphsTuple`.

        Nodes: ``node_type`` [N] int32 and ``text`` [N] object (strings; turn them into
        model inputs with `NodeTextVocab.encode`); with `statements`, also ``statement``
        [N] object (`statement_texts`); with `number_width` W > 0, also ``digits`` [N, W]
        int32 (`codeprop.graphs.numbers.digit_ids` of `number_texts`). Edges: ``type``
        [E] int32 (the flow) and ``position`` [E] int32.
        """
        nodes = {
            "node_type": self.node_type.astype(np.int32),
            "text": np.array(self.node_text, dtype=object),
        }
        if statements:
            nodes["statement"] = np.array(self.statement_texts(), dtype=object)
        if number_width:
            nodes["digits"] = numbers.digit_ids(self.number_texts(number_width), number_width)
        return jraph.GraphsTuple(
            nodes=nodes,
            edges={
                "type": self.edge_flow.astype(np.int32),
                "position": self.edge_position.astype(np.int32),
            },
            senders=self.edge_source.astype(np.int32),
            receivers=self.edge_target.astype(np.int32),
            n_node=np.array([self.num_nodes], np.int32),
            n_edge=np.array([self.num_edges], np.int32),
            globals=None,
        )

    def to_json(self) -> dict:
        """ProGraML's node-link JSON layout (networkx ``node_link_data`` of a directed
        multigraph): nodes with ``type``, ``text``, ``function`` (absent for the root and
        constants) and ``features.full_text``; links with ``flow``, ``position``,
        ``source``, ``target`` and ``key`` (the index among parallel links)."""
        nodes = []
        for i in range(self.num_nodes):
            node = {"id": i, "type": int(self.node_type[i]), "text": self.node_text[i]}
            if self.node_function[i] >= 0:
                node["function"] = int(self.node_function[i])
            node["features"] = {"full_text": [self.node_full_text[i]]}
            nodes.append(node)
        keys: collections.Counter = collections.Counter()
        links = []
        for s, t, f, p in self.edges():
            links.append({"flow": f, "position": p, "source": s, "target": t, "key": keys[s, t]})
            keys[s, t] += 1
        return {
            "directed": True,
            "multigraph": True,
            "graph": {
                "module": [{"name": self.module}],
                "function": [{"name": name} for name in self.functions],
            },
            "nodes": nodes,
            "links": links,
        }

    def node_counts(self) -> dict[str, int]:
        counts = np.bincount(self.node_type, minlength=3)
        return {name: int(c) for name, c in zip(NODE_TYPE_NAMES, counts, strict=True)}

    def edge_counts(self) -> dict[str, int]:
        counts = np.bincount(self.edge_flow, minlength=3)
        return {name: int(c) for name, c in zip(FLOW_NAMES, counts, strict=True)}

    def edge_multiset(self) -> list[str]:
        """Sorted ``flow|position|src_type:src_text|dst_type:dst_text`` strings: the graph
        up to node numbering."""
        kinds = [NODE_TYPE_NAMES[t] for t in self.node_type.tolist()]
        return sorted(
            f"{FLOW_NAMES[f]}|{p}|{kinds[s]}:{self.node_text[s]}|{kinds[t]}:{self.node_text[t]}"
            for s, t, f, p in self.edges()
        )

    def edges(self):
        """(source, target, flow, position) per edge, as Python ints."""
        return zip(
            self.edge_source.tolist(),
            self.edge_target.tolist(),
            self.edge_flow.tolist(),
            self.edge_position.tolist(),
            strict=True,
        )

    def edge_multiset_sha256(self) -> str:
        return hashlib.sha256("\n".join(self.edge_multiset()).encode()).hexdigest()


class _Builder:
    def __init__(self):
        self.node_type: list[int] = []
        self.node_text: list[str] = []
        self.node_function: list[int] = []
        self.node_full_text: list[str] = []
        self.src: list[int] = []
        self.dst: list[int] = []
        self.flow: list[int] = []
        self.pos: list[int] = []

    def node(self, kind: int, text: str, function: int, full_text: str) -> int:
        self.node_type.append(kind)
        self.node_text.append(text)
        self.node_function.append(function)
        self.node_full_text.append(full_text)
        return len(self.node_type) - 1

    def edge(self, source: int, target: int, flow: int, position: int) -> None:
        self.src.append(source)
        self.dst.append(target)
        self.flow.append(flow)
        self.pos.append(position)


def build(module: llvm_ir.Module, per_use: bool = True) -> ProgramGraph:
    """The ProGraML graph of a module read by `codeprop.graphs.llvm_ir.read`.

    Raises:
      llvm_ir.IRError: the module uses an undefined value or branches to a missing block.
    """
    b = _Builder()
    root = b.node(INSTRUCTION, ROOT_TEXT, -1, "")
    function_names = {f.name for f in module.functions}
    entries: dict[str, int] = {}
    exits: dict[str, list[int]] = {}
    call_sites: list[tuple[int, str]] = []
    constants: dict[tuple[str, str], list] = {}
    for index, function in enumerate(module.functions):
        if function.declaration:
            node = b.node(INSTRUCTION, UNDEFINED_FUNCTION_TEXT, index, "")
            entries[function.name] = node
            exits[function.name] = [node]
            continue
        entry, function_exits = _build_function(
            b, function, index, function_names, module, constants, call_sites, per_use
        )
        entries[function.name] = entry
        exits[function.name] = function_exits
    for text, full_text, uses in constants.values():
        node = b.node(CONSTANT, text, -1, full_text)
        for user, position in uses:
            b.edge(node, user, DATA, position)
    for name, entry in entries.items():
        b.edge(root, entry, CALL, 0)
        for exit_node in exits[name]:
            b.edge(exit_node, root, CALL, 0)
    for site, callee in call_sites:
        if callee in entries:
            b.edge(site, entries[callee], CALL, 0)
            for exit_node in exits[callee]:
                b.edge(exit_node, site, CALL, 0)
    return ProgramGraph(
        node_type=np.array(b.node_type, np.int8),
        node_text=b.node_text,
        node_function=np.array(b.node_function, np.int32),
        node_full_text=b.node_full_text,
        edge_source=np.array(b.src, np.int32),
        edge_target=np.array(b.dst, np.int32),
        edge_flow=np.array(b.flow, np.int8),
        edge_position=np.array(b.pos, np.int32),
        functions=[f.name for f in module.functions],
        module=module.name,
        external_functions=tuple(f.name for f in module.functions if f.declaration),
    )


def _build_function(b, function, index, function_names, module, constants, call_sites, per_use):
    arguments = {name: (text, raw) for name, text, raw in function.arguments}
    results = {}
    for _, instructions in function.blocks:
        for ins in instructions:
            if ins.result is not None:
                results[ins.result] = (ins.result_type, ins.raw_result_type)
    producers: dict[str, int] = {}
    argument_uses: dict[str, list[tuple[int, int]]] = {}
    value_uses: list[tuple[str, int, int]] = []  # (value, user, position)
    first: dict[str | None, int] = {}
    last: list[int] = []
    successors: list[list[str]] = []
    labels: dict[str | None, int] = {}
    node_type, node_text = b.node_type.append, b.node_text.append
    node_function, node_full_text = b.node_function.append, b.node_full_text.append
    src, dst, flow, pos = b.src.append, b.dst.append, b.flow.append, b.pos.append
    node = len(b.node_type) - 1
    for block, (label, instructions) in enumerate(function.blocks):
        labels[label] = block
        previous = None
        for ins in instructions:
            node += 1
            node_type(INSTRUCTION)
            node_text(ins.opcode)
            node_function(index)
            node_full_text(ins.text)
            if previous is None:
                first[block] = node
            else:
                src(previous)
                dst(node)
                flow(CONTROL)
                pos(0)
            previous = node
            if ins.result is not None:
                producers[ins.result] = node
            if ins.callee is not None and ins.callee in function_names:
                call_sites.append((node, ins.callee))
            for position, kind, key, text, raw in ins.operands:
                if kind == llvm_ir.VALUE:
                    if key in arguments:
                        argument_uses.setdefault(key, []).append((node, position))
                    elif key in results:
                        value_uses.append((key, node, position))
                    else:
                        raise llvm_ir.IRError(
                            f"{function.name}: use of undefined value {key} in: {ins.text}"
                        )
                elif kind == "global":
                    if key in function_names:
                        continue  # Functions are not data: call edges carry them.
                    full_text = module.globals.get(key, f"{raw} {key}")
                    constants.setdefault((raw, key), (text, full_text, []))[2].append(
                        (node, position)
                    )
                elif kind == llvm_ir.CONSTANT:
                    constants.setdefault((raw, key), (text, f"{raw} {key}", []))[2].append(
                        (node, position)
                    )
        last.append(previous)
        successors.append(ins.successors if instructions else [])
    for name, uses in argument_uses.items():
        text, raw = arguments[name]
        node = b.node(VARIABLE, text, index, f"{raw} {name}")
        for user, position in uses:
            b.edge(node, user, DATA, position)
    if per_use:
        node = len(b.node_type) - 1
        for value, user, position in value_uses:
            text, raw = results[value]
            node += 1
            node_type(VARIABLE)
            node_text(text)
            node_function(index)
            node_full_text(f"{raw} {value}")
            src(node)
            dst(user)
            flow(DATA)
            pos(position)
            src(producers[value])
            dst(node)
            flow(DATA)
            pos(0)
    else:
        variables: dict[str, int] = {}
        for value, user, position in value_uses:
            node = variables.get(value)
            if node is None:
                text, raw = results[value]
                node = variables[value] = b.node(VARIABLE, text, index, f"{raw} {value}")
                b.edge(producers[value], node, DATA, 0)
            b.edge(node, user, DATA, position)
    # Control edges between blocks, breadth-first from the entry block.
    exits = []
    visited = {0}
    queue = collections.deque([0])
    while queue:
        block = queue.popleft()
        targets = successors[block]
        for position, label in enumerate(targets):
            target = labels.get(label)
            if target is None:
                raise llvm_ir.IRError(f"{function.name}: branch to unknown block {label}")
            b.edge(last[block], first[target], CONTROL, position)
            if target not in visited:
                visited.add(target)
                queue.append(target)
        if not targets:
            exits.append(last[block])
    return first[0], exits


def from_ir(text: str, name: str = "", per_use: bool = True, validate: bool = True):
    """The program graph of textual LLVM IR.

    Args:
      text: the IR.
      name: module name for the graph (e.g. the file name).
      per_use: a variable node per use (ProGraML) or per value.
      validate: parse with LLVM (llvmlite) first, so LLVM rejects malformed IR.

    Raises:
      llvm_ir.IRError: the IR is malformed, empty (no function with a body) or unreadable.
    """
    if validate:
        llvm_ir.validate(text)
    module = llvm_ir.read(text, name)
    if not any(not f.declaration for f in module.functions):
        raise llvm_ir.IRError("empty module: no function has a body")
    return build(module, per_use)


# Node fields of strings (`ProgramGraph.to_graphs_tuple`); `NodeTextVocab.encode` removes them.
TEXT_FIELDS = ("text", "statement")


@dataclasses.dataclass
class NodeTextVocab:
    """Node texts seen in training graphs -> ids (0 is out-of-vocabulary).

    With ``fields=("statement", "text")`` (`ProgramGraph.to_graphs_tuple` with
    ``statements=True``) a node's id is that of its statement text when the statement
    was seen at least `min_count` times in training, else that of its short ProGraML text
    (opcode or type): rare statements back off to what ProGraML itself would use.

    Attributes:
      texts: the vocabulary (id = index + 1), texts of every field together.
      fields: node fields looked up in order.
    """

    texts: list[str]
    fields: tuple[str, ...] = ("text",)
    index: dict[str, int] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self.index = {t: i + 1 for i, t in enumerate(self.texts)}

    @classmethod
    def build(
        cls,
        graphs: Iterable[jraph.GraphsTuple],
        min_count: int = 1,
        fields: Sequence[str] = ("text",),
    ) -> NodeTextVocab:
        """The texts of `fields[0]` seen `min_count` times or more, and every text of the
        back-off fields after it."""
        counts = [collections.Counter() for _ in fields]
        for g in graphs:
            for counter, field in zip(counts, fields, strict=True):
                counter.update(g.nodes[field].tolist())
        texts = {t for t, c in counts[0].items() if c >= min_count}
        for counter in counts[1:]:
            texts.update(counter)
        return cls(sorted(texts), tuple(fields))

    def __len__(self) -> int:
        return len(self.texts) + 1

    def ids(self, texts: Sequence[str], *backoff: Sequence[str]) -> np.ndarray:
        """[N] ids of `texts`; where one is unknown, of the same node's `backoff` texts."""
        index = self.index
        ids = np.array([index.get(t, 0) for t in texts], np.int32)
        for other in backoff:
            missing = np.flatnonzero(ids == 0)
            ids[missing] = [index.get(other[i], 0) for i in missing.tolist()]
        return ids

    def encode(self, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
        """Replaces the text fields of ``nodes`` by ``nodes["type"]`` [N] int32 ids."""
        nodes = {k: v for k, v in graph.nodes.items() if k not in TEXT_FIELDS}
        nodes["type"] = self.ids(*(graph.nodes[f].tolist() for f in self.fields))
        return graph._replace(nodes=nodes)


SOURCE_LANGUAGES = {
    ".c": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".C": "cpp",
    ".cl": "opencl",
    ".ll": "ir",
}


REPORT = "report.json"


def export(
    inputs: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    per_use: bool = True,
    validate: bool = True,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> list[dict]:
    """Writes ``out_dir/<input stem>.json`` (`ProgramGraph.to_json`) for each C, C++,
    OpenCL or ``.ll`` input, and ``out_dir/report.json`` with one outcome per input.

    Sources are compiled in parallel (`codeprop.graphs.compiler`, clang's defaults per
    language). An input that fails (unknown suffix, a stem another input or the report
    has, unreadable, ``.ll`` that is not UTF-8, compile error, timeout, IR rejected, empty
    module, any error building its graph) is reported with its reason; the others are
    still written.

    Returns:
      Per input: ``input``, ``ok``, and ``output``, ``nodes``, ``edges`` or ``reason``.
    """
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [pathlib.Path(p) for p in inputs]
    outcomes: list[dict] = [{"input": str(p), "ok": False} for p in paths]
    stems = collections.Counter(p.stem for p in paths)
    texts: dict[int, str] = {}
    to_compile: list[int] = []
    for i, path in enumerate(paths):
        language = SOURCE_LANGUAGES.get(path.suffix)
        if language is None:
            outcomes[i]["reason"] = f"unknown input type {path.suffix!r}"
        elif stems[path.stem] > 1:
            outcomes[i]["reason"] = f"another input has the stem {path.stem!r}"
        elif path.stem == REPORT.removesuffix(".json"):
            outcomes[i]["reason"] = f"its graph would overwrite the export's {REPORT}; rename it"
        else:
            try:
                data = path.read_bytes()
            except OSError as e:
                outcomes[i]["reason"] = f"cannot read: {e}"
                continue
            if language == "ir":
                try:
                    texts[i] = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    outcomes[i]["reason"] = (
                        f"not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); LLVM "
                        "text IR with raw bytes is not read (clang escapes them as \\XX)"
                    )
                continue
            texts[i] = data.decode("utf-8", errors="surrogateescape")
            to_compile.append(i)
    if to_compile:
        cc = compiler.Compiler(cache_dir)
        jobs = [
            compiler.default_attempts(texts[i], SOURCE_LANGUAGES[paths[i].suffix])
            for i in to_compile
        ]
        for i, result in zip(to_compile, cc.compile_many(jobs, workers), strict=True):
            if result.ok:
                texts[i] = result.ir
            else:
                del texts[i]
                message = result.errors[-1][1] if result.errors else ""
                outcomes[i]["reason"] = f"{result.reason}: {message}"
    for i, text in texts.items():
        try:
            graph = from_ir(text, paths[i].name, per_use=per_use, validate=validate)
        except llvm_ir.IRError as e:
            outcomes[i]["reason"] = f"IR rejected: {e}"
            continue
        except Exception as e:  # noqa: BLE001 - one input's failure, reported; the rest go on
            outcomes[i]["reason"] = f"graph construction failed: {type(e).__name__}: {e}"
            continue
        target = out / f"{paths[i].stem}.json"
        target.write_text(json.dumps(graph.to_json()))
        outcomes[i].update(
            ok=True, output=str(target), nodes=graph.num_nodes, edges=graph.num_edges
        )
    (out / REPORT).write_text(json.dumps(outcomes, indent=1))
    return outcomes


def export_lines(outcomes: list[dict], out: str | os.PathLike) -> list[str]:
    """`export`'s outcomes as terminal lines: one per input, then the count written."""
    lines = []
    for o in outcomes:
        if o["ok"]:
            lines.append(f"{o['input']}: {o['nodes']} nodes, {o['edges']} edges -> {o['output']}")
        else:
            lines.append(f"{o['input']}: FAILED: {o['reason']}")
    failed = sum(not o["ok"] for o in outcomes)
    lines.append(f"{len(outcomes) - failed} of {len(outcomes)} graphs written to {out}")
    return lines
