import numpy as np
import pytest

from codeprop.graphs import ast

from conftest import TESTDATA


def _edge_counts(graph):
    return np.bincount(graph.edges["type"], minlength=ast.NUM_EDGE_TYPES).tolist()


@pytest.mark.parametrize(
    ("name", "language", "nodes", "edges", "first_kinds"),
    [
        # Hand-counted: 17 named nodes; 16 parent->child edges; siblings: function_definition
        # (3 children: 2), function_declarator (1), parameter_list (1), two
        # parameter_declarations (1 each), binary_expression (1) = 7.
        (
            "add.c",
            "c",
            17,
            [16, 16, 7],
            ["translation_unit", "function_definition", "primitive_type"],
        ),
        ("kernel.cl", "opencl", 20, [19, 19, 7], ["translation_unit", "function_definition"]),
        ("old_style.cpp", "cpp", 26, [25, 25, 12], ["translation_unit", "preproc_include"]),
    ],
)
def test_exact_graphs(name, language, nodes, edges, first_kinds):
    graph = ast.ast_graph((TESTDATA / "ast" / name).read_bytes(), language)
    assert int(graph.n_node[0]) == nodes
    assert graph.nodes["kind"].shape == (nodes,)
    assert _edge_counts(graph) == edges
    assert int(graph.n_edge[0]) == sum(edges) == len(graph.senders) == len(graph.receivers)
    assert int(graph.globals["parse_errors"][0]) == 0
    assert ast.kind_names(graph, language)[: len(first_kinds)] == first_kinds
    child = graph.edges["type"] == ast.CHILD
    parent = graph.edges["type"] == ast.PARENT
    # PARENT edges are exactly the reversed CHILD edges; every non-root node has one parent.
    assert sorted(zip(graph.senders[child], graph.receivers[child])) == sorted(
        zip(graph.receivers[parent], graph.senders[parent])
    )
    assert sorted(graph.receivers[child].tolist()) == list(range(1, nodes))


def test_add_c_structure():
    graph = ast.ast_graph((TESTDATA / "ast" / "add.c").read_bytes(), "c")
    names = ast.kind_names(graph, "c")
    assert names.count("identifier") == 5 and names.count("parameter_declaration") == 2
    sib = graph.edges["type"] == ast.SIBLING
    pairs = {(names[s], names[r]) for s, r in zip(graph.senders[sib], graph.receivers[sib])}
    assert ("primitive_type", "function_declarator") in pairs
    assert ("function_declarator", "compound_statement") in pairs


def test_opencl_qualifiers_blanked_with_same_length():
    src = b"__kernel void f(__global int* a, local float* b, constant int* c) {}"
    out = ast.blank_opencl_qualifiers(src)
    assert len(out) == len(src)
    assert out == b"         void f(         int* a,       float* b,          int* c) {}"
    # Identifiers that merely contain a qualifier are left alone.
    assert ast.blank_opencl_qualifiers(b"int global_id;") == b"int global_id;"


def test_opencl_without_blanking_has_errors_with_blanking_none():
    src = (TESTDATA / "ast" / "kernel.cl").read_bytes()
    assert int(ast.ast_graph(src, "c").globals["parse_errors"][0]) > 0
    assert int(ast.ast_graph(src, "opencl").globals["parse_errors"][0]) == 0


def test_parse_errors_are_counted():
    graph = ast.ast_graph("int main( { return 0 }", "c")
    assert int(graph.globals["parse_errors"][0]) >= 1
    assert "ERROR" in ast.kind_names(graph, "c") or graph.globals["parse_errors"][0] > 0


def test_comments_are_not_nodes():
    a = ast.ast_graph("int x; /* note */ // more\n", "c")
    b = ast.ast_graph("int x;\n", "c")
    assert ast.kind_names(a, "c") == ast.kind_names(b, "c")


def test_vocab_oov_and_encoding():
    train = ast.ast_graph((TESTDATA / "ast" / "add.c").read_bytes(), "c")
    vocab = ast.NodeTypeVocab.build([train], "c")
    assert vocab.names[0] == "<oov>"
    assert vocab.names[1] == "identifier"  # The most frequent kind (5 of 17).
    assert len(vocab) == 1 + len(set(ast.kind_names(train, "c")))
    table = vocab.table("c")
    other = vocab.encode(ast.ast_graph("float f(void) { while (1) {} }", "c"), table)
    names = ast.kind_names(other, "c")
    for name, vid in zip(names, other.nodes["type"]):
        assert vid == (vocab.names.index(name) if name in vocab.names else ast.OOV)
    assert (other.nodes["type"] == ast.OOV).sum() >= 1  # while_statement is unseen.


def test_unknown_language():
    with pytest.raises(ValueError, match="unknown language"):
        ast.ast_graph("x", "fortran")
