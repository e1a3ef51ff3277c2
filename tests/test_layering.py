"""The package layering: every import inside codeprop points down (or within a package).

Layers, bottom first; packages in one layer do not import each other:

    data                        benchmark datasets (raw files, tfds builders, splits)
    graphs, tokens              program graphs; tokenizers and fill-in-the-middle
    models                      decoder, GNNs, heads, logical axis names
    checkpoints                 Hugging Face import/export of decoders
    train                       classifier loop, batchers, steps, pretraining, checkpointing
    probes, corpus, evals       the probe protocol; the corpus pipeline; evaluation
    analysis                    embeddings and the comparison report
    recipes                     end-to-end runs that chain the packages
    main                        command lines (codeprop/main.py and every __main__.py)

Every import counts, also one inside a function.
"""

import ast
import pathlib
import sys

from conftest import REPO

LAYERS = (
    {"data"},
    {"graphs", "tokens"},
    {"models"},
    {"checkpoints"},
    {"train"},
    {"probes", "corpus", "evals"},
    {"analysis"},
    {"recipes"},
    {"main"},
)
RANK = {package: rank for rank, layer in enumerate(LAYERS) for package in layer}
PACKAGE_DIR = REPO / "codeprop"


def package_of(path: pathlib.Path) -> str:
    """The layer name of a module: its package, or ``main`` for entry points."""
    parts = path.relative_to(PACKAGE_DIR).parts
    if parts[-1] in ("main.py", "__main__.py"):
        return "main"
    if len(parts) == 1:
        return "__init__"
    return parts[0]


def imported_packages(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, package) of every codeprop import in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "codeprop":
                names = [f"codeprop.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "codeprop" and len(parts) > 1:
                found.append((node.lineno, parts[1]))
    return found


def violations() -> list[str]:
    bad = []
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        own = package_of(path)
        for line, target in imported_packages(path):
            if target == own or target == "__version__":
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            if own not in RANK or target not in RANK:
                bad.append(f"{where}: {own} -> {target}: a package outside the layers")
            elif RANK[target] >= RANK[own]:
                bad.append(f"{where}: {own} imports {target}, which is not below it")
    return bad


def test_every_package_is_in_a_layer():
    packages = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(RANK), packages - set(RANK)
    assert {"data", "graphs", "tokens", "models", "train", "probes", "corpus"} <= packages


def test_imports_point_down():
    assert violations() == []


def test_the_scan_sees_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text(
        "import codeprop.models.gnn\n"
        "from codeprop import train\n"
        "def f():\n"
        "    from codeprop.probes import protocol\n"
    )
    assert imported_packages(module) == [(1, "models"), (2, "train"), (4, "probes")]


def test_an_upward_import_is_reported(monkeypatch, tmp_path):
    root = tmp_path / "codeprop"
    (root / "data").mkdir(parents=True)
    (root / "data" / "__init__.py").write_text("")
    (root / "data" / "bad.py").write_text("from codeprop.train import steps\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", root)
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    assert violations() == ["codeprop/data/bad.py:1: data imports train, which is not below it"]
