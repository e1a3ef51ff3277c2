"""Source code -> abstract syntax tree graph (numpy only; no JAX).

Parsing uses tree-sitter's C and C++ grammars. OpenCL C goes through the C grammar after its
address-space and kernel qualifiers are blanked with spaces of the same length, so byte
offsets are unchanged. Only named nodes are kept (punctuation and keywords are not AST
nodes) and comments are left out. Each node's feature is its grammar node kind; edges are
typed:

  ``CHILD`` (0)    parent -> child
  ``PARENT`` (1)   child -> parent (the reverse of every CHILD edge)
  ``SIBLING`` (2)  child -> its next named sibling

For a tree of N nodes there are N - 1 CHILD edges, N - 1 PARENT edges and, summed over the
nodes with children, (number of children - 1) SIBLING edges. A GCN uses the first two (the
tree, undirected); an R-GCN can use all three as relations.

Graphs carry grammar kind ids (``nodes["kind"]``); `NodeTypeVocab` (built from a training
split) turns them into model inputs (``nodes["type"]``) with an out-of-vocabulary id 0.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import re
from collections.abc import Iterable

import jraph
import numpy as np
import tree_sitter
import tree_sitter_c
import tree_sitter_cpp

LANGUAGES = ("c", "cpp", "opencl")
CHILD, PARENT, SIBLING = 0, 1, 2
NUM_EDGE_TYPES = 3
OOV = 0
_TS_ERROR_SYMBOL = 65535


def _kind_name(lang: tree_sitter.Language, kind: int) -> str:
    return "ERROR" if kind == lang.node_kind_count else (lang.node_kind_for_id(kind) or "")


_OPENCL_QUALIFIERS = re.compile(
    rb"\b(?:__kernel|__global|__local|__constant|__private|kernel|global|local|constant|private)\b"
)


def blank_opencl_qualifiers(source: bytes) -> bytes:
    """Replaces OpenCL's kernel and address-space qualifiers by spaces of the same length."""
    return _OPENCL_QUALIFIERS.sub(lambda m: b" " * len(m.group()), source)


@functools.cache
def grammar(language: str) -> tree_sitter.Language:
    """The tree-sitter grammar for ``c``, ``cpp`` or ``opencl`` (which uses C's)."""
    if language in ("c", "opencl"):
        return tree_sitter.Language(tree_sitter_c.language())
    if language == "cpp":
        return tree_sitter.Language(tree_sitter_cpp.language())
    raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")


@functools.cache
def _parser(language: str) -> tree_sitter.Parser:
    return tree_sitter.Parser(grammar(language))


@functools.cache
def _comment_kind(language: str) -> int:
    return grammar(language).id_for_node_kind("comment", True)


def _preorder(tree: tree_sitter.Tree, skip_kind: int) -> tuple[list[int], list[int], int]:
    """Named nodes in preorder: (kind ids, parent index or -1, number of ERROR/MISSING nodes)."""
    cursor = tree.walk()
    kinds: list[int] = []
    parents: list[int] = []
    stack = [-1]  # Index of the nearest named ancestor of the cursor's children.
    errors = 0
    count_errors = tree.root_node.has_error
    while True:
        node = cursor.node
        named = node.is_named
        kind = node.kind_id
        descend = True
        if named:
            if kind == skip_kind:
                descend = False
            else:
                if count_errors and (node.is_error or node.is_missing):
                    errors += 1
                kinds.append(kind)
                parents.append(stack[-1])
        if descend and cursor.goto_first_child():
            stack.append(len(kinds) - 1 if named else stack[-1])
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return kinds, parents, errors
            stack.pop()


def ast_graph(source: str | bytes, language: str) -> jraph.GraphsTuple:
    """Parses `source` and returns its AST as a single-graph `jraph.GraphsTuple`.

    Args:
      source: program text (str is UTF-8 encoded; bytes are parsed as they are).
      language: ``c``, ``cpp`` or ``opencl``.

    Returns:
      A GraphsTuple with N nodes and E edges: ``nodes["kind"]`` [N] int32 grammar kind ids
      (node 0 is the root; ERROR nodes get ``grammar(language).node_kind_count``),
      ``edges["type"]`` [E] int32 (CHILD/PARENT/SIBLING), ``senders``/``receivers`` [E]
      int32, ``n_node``/``n_edge`` [1] int32 and ``globals["parse_errors"]`` [1] int32, the
      number of ERROR and MISSING nodes.
    """
    data = source.encode("utf-8") if isinstance(source, str) else source
    if language == "opencl":
        data = blank_opencl_qualifiers(data)
    tree = _parser(language).parse(data)
    kinds, parents, errors = _preorder(tree, _comment_kind(language))
    kind = np.asarray(kinds, np.int32)
    # tree-sitter's ERROR symbol is 65535; give it the first id after the grammar's kinds.
    kind[kind == _TS_ERROR_SYMBOL] = grammar(language).node_kind_count
    parent = np.asarray(parents, np.int32)
    n = len(kinds)
    child = np.arange(1, n, dtype=np.int32)
    # In preorder, siblings appear in source order: a stable sort by parent keeps it.
    order = np.argsort(parent[1:], kind="stable") + 1
    same = parent[order[1:]] == parent[order[:-1]]
    sib_from, sib_to = order[:-1][same].astype(np.int32), order[1:][same].astype(np.int32)
    senders = np.concatenate([parent[1:], child, sib_from])
    receivers = np.concatenate([child, parent[1:], sib_to])
    types = np.repeat(np.array([CHILD, PARENT, SIBLING], np.int32), [n - 1, n - 1, len(sib_from)])
    return jraph.GraphsTuple(
        nodes={"kind": kind},
        edges={"type": types},
        senders=senders,
        receivers=receivers,
        n_node=np.array([n], np.int32),
        n_edge=np.array([len(types)], np.int32),
        globals={"parse_errors": np.array([errors], np.int32)},
    )


def kind_names(graph: jraph.GraphsTuple, language: str) -> list[str]:
    """The grammar kind name of each node of an `ast_graph` (for inspection and tests)."""
    lang = grammar(language)
    return [_kind_name(lang, int(k)) for k in graph.nodes["kind"]]


@dataclasses.dataclass(frozen=True)
class NodeTypeVocab:
    """AST node kinds seen in training, mapped to ids 1..V-1 (0 is out-of-vocabulary).

    Attributes:
      names: the kind names in id order, starting with ``"<oov>"`` at id 0.
    """

    names: tuple[str, ...]

    @classmethod
    def build(
        cls, graphs: Iterable[jraph.GraphsTuple], language: str, min_count: int = 1
    ) -> NodeTypeVocab:
        """Builds the vocabulary from (training) graphs; ids ordered by count, then name."""
        counts: collections.Counter[int] = collections.Counter()
        for g in graphs:
            ids, n = np.unique(g.nodes["kind"], return_counts=True)
            counts.update(dict(zip(ids.tolist(), n.tolist(), strict=True)))
        lang = grammar(language)
        named = collections.Counter()
        for kind, n in counts.items():
            named[_kind_name(lang, kind)] += n
        kept = sorted(
            (name for name, n in named.items() if n >= min_count), key=lambda s: (-named[s], s)
        )
        return cls(names=("<oov>", *kept))

    @classmethod
    def of_grammar(cls, language: str) -> NodeTypeVocab:
        """Every named node kind of the language's grammar, and ERROR: a vocabulary that
        does not depend on any data (for features that must have the same columns in
        every fold); ids in the grammar's order."""
        lang = grammar(language)
        names = [_kind_name(lang, k) for k in range(lang.node_kind_count)
                 if lang.node_kind_is_named(k) and lang.node_kind_is_visible(k)]  # fmt: skip
        return cls(names=("<oov>", *dict.fromkeys([*names, "ERROR"])))

    def __len__(self) -> int:
        return len(self.names)

    @functools.cached_property
    def _index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    def table(self, language: str) -> np.ndarray:
        """[K + 1] int32 lookup from the grammar's kind ids (and ERROR) to vocabulary ids."""
        lang = grammar(language)
        kinds = range(lang.node_kind_count + 1)
        return np.array([self._index.get(_kind_name(lang, k), OOV) for k in kinds], np.int32)

    def encode(self, graph: jraph.GraphsTuple, table: np.ndarray) -> jraph.GraphsTuple:
        """Adds ``nodes["type"]`` [N] int32 vocabulary ids, from a `table` of this vocab."""
        return graph._replace(nodes={**graph.nodes, "type": table[graph.nodes["kind"]]})
