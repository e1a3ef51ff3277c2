"""Digit features of constants: values from LLVM's literal forms, layout, ids, graphs."""

import numpy as np
import pytest

from codeprop.graphs import numbers, programl

from conftest import TESTDATA


@pytest.mark.parametrize(
    "full_text, value",
    [
        ("i32 42", 42),
        ("i64 -1", -1),
        ("i1 true", 1),
        ("i1 false", 0),
        ("i8 0", 0),
        ("i128 123456789012345678901234567890", 123456789012345678901234567890),
        ("ptr null", None),
        ("i32 zeroinitializer", 0),
        ("double 5.000000e-01", 0.5),
        ("double -0.000000e+00", 0.0),
        ("float 0.000000e+00", 0.0),
        ("double 0x4000000000000000", 2.0),
        ("double -0x3FF8000000000000", -1.5),
        ("float 0x3FB99999A0000000", 0.10000000149011612),
        ("double 0x7FF0000000000000", None),  # Infinity.
        ("double 0x7FF8000000000000", None),  # NaN.
        ("x86_fp80 0xK3FFF8000000000000000", None),
        ("half 0xH3C00", None),
        ("i32 undef", None),
        ("i32 poison", None),
        ("<4 x i32> <i32 1, i32 2, i32 3, i32 4>", None),
        ("[2 x i32] [i32 1, i32 2]", None),
        ("i64 ptrtoint (ptr @a to i64)", None),
        ("@a = global i32 5, align 4", None),
    ],
)
def test_constant_values(full_text, value):
    got = numbers.constant_value(full_text)
    assert got == value and type(got) is type(value)


def test_layout_and_ids():
    assert numbers.number_text(42, 12) == "42"
    assert numbers.number_text(-1, 12) == "-1"
    assert numbers.number_text(0.5, 12) == "5.0000e-01"
    assert numbers.number_text(1.0, 12) == "1.0000e+00"
    assert numbers.number_text(123456789012345, 12) == "1.2346e+14"
    assert numbers.number_text(-(10**200), 10) == "-1.00e+200"  # Shortened mantissa.
    assert numbers.number_text(1e-300, 10) == "1.000e-300"
    assert numbers.number_text(None, 12) == ""
    with pytest.raises(ValueError, match="at least 10"):
        numbers.number_text(1, 9)
    ids = numbers.digit_ids(["42", "", "-1.5000e+00"], 12)
    assert ids.shape == (3, 12) and ids.dtype == np.int32
    # Right-aligned: the units digit is always the last position.
    assert ids[0].tolist() == [0] * 10 + [5, 3]
    assert ids[1].tolist() == [0] * 12
    assert ids[2].tolist() == [0, 11, 2, 13, 6, 1, 1, 1, 14, 12, 1, 1]
    with pytest.raises(ValueError, match="longer than the width"):
        numbers.digit_ids(["1234567890123"], 12)
    with pytest.raises(ValueError, match="outside"):
        numbers.digit_ids(["0x12"], 12)


def test_graph_digits_only_on_numeric_constants():
    graph = programl.from_ir((TESTDATA / "ir" / "small.ll").read_text())
    texts = graph.number_texts(12)
    constants = {
        full: text
        for full, text, kind in zip(graph.node_full_text, texts, graph.node_type, strict=True)
        if kind == programl.CONSTANT
    }
    assert constants == {"i32 3": "3", "i32 0": "0", "i32 1": "1"}
    assert all(t == "" for t, k in zip(texts, graph.node_type, strict=True) if k != 2)
    g = graph.to_graphs_tuple(statements=True, number_width=12)
    assert g.nodes["digits"].shape == (graph.num_nodes, 12)
    assert int((g.nodes["digits"] > 0).sum()) == 3  # One character for each constant.
    # The text fields go to the vocabulary; the digits stay for the model.
    vocab = programl.NodeTextVocab.build([g])
    assert set(vocab.encode(g).nodes) == {"node_type", "type", "digits"}
    assert "digits" not in graph.to_graphs_tuple().nodes
