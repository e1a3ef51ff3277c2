"""Every notebook in colabs/ runs top to bottom (with small epoch counts), its install
cell in the offline branch (codeprop is installed), and shows the figures it should."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO

NOTEBOOKS = sorted((REPO / "colabs").glob("*.ipynb"))
# What each notebook must print (besides its install cell's "codeprop is installed").
EXPECTED = {
    "devmap_ast_gcn.ipynb": ["680 rows, 280 faster on the GPU", "AST + GCN + aux inputs"],
    "devmap_programl_rgcn.ipynb": [
        "<%ID> = call i64 @_Z13get_global_idj(i32 noundef <INT>)",
        "{'graph': 669}",
        "PROGRAML + R-GCN + aux inputs",
    ],
    "decoder_checkpoints.ipynb": [
        "parameters; 4 query heads, 2 KV heads",
        "['config.json', 'model.safetensors']",
        "fused c_attn: (256, 128)",
        "logits (1, 12, 263)",
        "embeddings (2, 128)",
        "training accuracy",
    ],
    "compare_representations.ipynb": [
        "AST + GCN                  structured accuracy",
        "LLM                        LLM",
        "bag of bytes               baseline",
        "left out: none",
        "structured representations beat fine-tuned LLMs",
    ],
}
# How many images (PNG outputs) each notebook must show.
IMAGES = {
    "devmap_ast_gcn.ipynb": 2,  # accuracy per fold, embeddings
    "devmap_programl_rgcn.ipynb": 2,  # the ProGraML graph, accuracy per fold
    "decoder_checkpoints.ipynb": 1,  # training curves
    "compare_representations.ipynb": 3,  # t-SNE panels, silhouettes, accuracy/parameters
}


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, raw_dir, tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("CODEPROP_DATA_DIR", str(raw_dir))
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    monkeypatch.setenv("CODEPROP_NOTEBOOK_EPOCHS", "2")
    monkeypatch.setenv("CODEPROP_NOTEBOOK_FOLDS", "1")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = "".join(
        o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
    )
    first = notebook.cells[1]
    assert "find_spec('codeprop')" in first.source
    assert first.outputs[0]["text"] == "codeprop is installed\n"
    for expected in EXPECTED[path.name]:
        assert expected in outputs
    images = [
        o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs
        if "image/png" in o.get("data", {})
    ]  # fmt: skip
    assert len(images) == IMAGES[path.name]
    if path.name == "devmap_ast_gcn.ipynb":
        assert os.path.exists(tmp_path / "workdir" / "notebook_devmap_amd" / "results.json")
