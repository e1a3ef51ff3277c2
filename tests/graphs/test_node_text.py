import numpy as np
import pytest

from codeprop.graphs import node_text, programl

from conftest import TESTDATA


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("%12 = add nsw i32 %a, 1", "<%ID> = add nsw i32 <%ID>, <INT>"),
        ("i32 %a", "i32 <%ID>"),
        (
            "%5 = load i32, i32* %4, align 4, !tbaa !9",
            "<%ID> = load i32, i32* <%ID>, align 4",
        ),
        (
            "%9 = tail call i64 @_Z13get_global_idj(i32 0) #6",
            "<%ID> = tail call i64 @_Z13get_global_idj(i32 <INT>) ",
        ),
        ("%f = call float @helper(float %x)", "<%ID> = call float <@ID>(float <%ID>)"),
        (
            "%16 = fsub <4 x float> <float 1.000000e+00, float 0x3FA99999A0000000>, %15",
            "<%ID> = fsub <4 x float> <float <FLOAT>, float <FLOAT>>, <%ID>",
        ),
        (
            '@.str = private unnamed_addr constant [3 x i8] c"%d\\00", align 1',
            "<@ID> = private unnamed_addr constant [3 x i8] <STRING>, align 1",
        ),
        (
            "%a = getelementptr inbounds [100 x %struct.node], ptr @g, i64 0, i64 %i",
            "<%ID> = getelementptr inbounds [100 x <%TYPE>], ptr <@ID>, i64 <INT>, i64 <%ID>",
        ),
        ('%1 = alloca %"class.std::basic_string", align 8', "<%ID> = alloca <%TYPE>, align 8"),
        (
            "br i1 %c, label %then, label %done, !llvm.loop !7",
            "br i1 <%ID>, label <%ID>, label <%ID>",
        ),
        ("i64 -1", "i64 <INT>"),
        ("", ""),
    ],
)
def test_normalise(text, expected):
    keep = {"@_Z13get_global_idj"}
    assert node_text.normalise(text, keep) == expected


def test_statement_texts_of_a_module():
    g = programl.from_ir((TESTDATA / "ir" / "small.ll").read_text())
    assert g.external_functions == ("@abs",)
    statements = g.statement_texts()
    assert len(statements) == g.num_nodes
    by_text = dict(zip(g.node_full_text, statements, strict=True))
    # The external callee keeps its name; the defined one does not.
    assert by_text["%q = call i32 @abs(i32 %p)"] == "<%ID> = call i32 @abs(i32 <%ID>)"
    assert (
        by_text["%r = call i32 @add(i32 %v, i32 1)"]
        == "<%ID> = call i32 <@ID>(i32 <%ID>, i32 <INT>)"
    )
    assert by_text["i32 3"] == "i32 <INT>"
    # Nodes without a full text keep ProGraML's text.
    assert statements[0] == programl.ROOT_TEXT
    assert statements[g.node_text.index(programl.UNDEFINED_FUNCTION_TEXT)] == (
        programl.UNDEFINED_FUNCTION_TEXT
    )
    # Every use of %v reads the same statement as a variable node: 2 of them, per use.
    assert statements.count("i32 <%ID>") == sum(
        1 for t, k in zip(g.node_text, g.node_type) if t == "i32" and k == programl.VARIABLE
    )


def test_statement_vocabulary_backs_off_to_text():
    small = programl.from_ir((TESTDATA / "ir" / "small.ll").read_text()).to_graphs_tuple(True)
    legacy = programl.from_ir((TESTDATA / "ir" / "legacy.ll").read_text()).to_graphs_tuple(True)
    fields = ("statement", "text")
    vocab = programl.NodeTextVocab.build([small], min_count=2, fields=fields)
    statements = small.nodes["statement"].tolist()
    frequent = {s for s in statements if statements.count(s) >= 2}
    assert frequent == {"i32 <%ID>", "i32 <INT>", "ret i32 <%ID>", "ptr <%ID>"}
    assert set(vocab.texts) == frequent | set(small.nodes["text"].tolist())
    ids = vocab.encode(small).nodes["type"]
    assert "statement" not in vocab.encode(small).nodes and ids.min() >= 1
    index = {t: i + 1 for i, t in enumerate(vocab.texts)}
    for i, (s, t) in enumerate(zip(statements, small.nodes["text"].tolist(), strict=True)):
        assert ids[i] == (index[s] if s in frequent else index[t])
    # A graph of another module: unseen statements back off, unseen texts are 0.
    other = vocab.encode(legacy).nodes["type"]
    texts = legacy.nodes["text"].tolist()
    expected = [
        index.get(s) or index.get(t, 0)
        for s, t in zip(legacy.nodes["statement"].tolist(), texts, strict=True)
    ]
    np.testing.assert_array_equal(other, expected)
    assert 0 in other.tolist()


def test_normalise_all_equals_normalise_per_text():
    texts = [
        "%a = add i32 %b, 1",
        "%x.1 = add i32 %y, 1",
        '%"q r" = load ptr, ptr %"s t", align 8',
        "%p = getelementptr %struct.s, ptr %q, i64 0, i32 1",
        '%v = alloca %"class.std::vector", align 8',
        "%a = add i32 %b, 1",
        "i32 %a",
        "",
    ]
    for path in ("small.ll", "legacy.ll"):
        texts += programl.from_ir((TESTDATA / "ir" / path).read_text()).node_full_text
    keep = {"@abs"}
    assert node_text.normalise_all(texts, keep) == [
        node_text.normalise(t, keep).rstrip() for t in texts
    ]
