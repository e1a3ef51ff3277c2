"""Shared fixtures: the raw-data directory and a per-session tfds directory."""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]

# One persistent XLA compilation cache for the run: the xdist workers and the processes that
# tests start (they inherit the environment) compile each program once. Set before jax is
# imported; its keys cover the program, the options and the jax version, so a stale entry
# is never used. No size limit: with one, jax rescans the whole directory on every write.
# An entry read while another process writes it fails to decompress; jax warns and compiles.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(REPO / ".pytest_cache" / "jax"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
TESTDATA = REPO / "tests" / "testdata"
# Eight small C programs for model and probe tests (labels chosen per test).
SMALL_C_PROGRAMS = [
    "int a(int x) { return x + 1; }",
    "void b(float *p, int n) { for (int i = 0; i < n; i++) p[i] = 0; }",
    "struct c { int x; int y; };",
    "int d() { int s = 0; while (s < 10) s++; return s; }",
    "double e(double x) { return x > 0 ? x : -x; }",
    "void f() { if (1) { g(); } else { h(); } }",
    "char *k(char *s) { return s; }",
    "int m[10]; int n() { return m[3] * m[4]; }",
]


def _find_raw_dir() -> pathlib.Path | None:
    if os.environ.get("CODEPROP_DATA_DIR"):
        return pathlib.Path(os.environ["CODEPROP_DATA_DIR"]).resolve()
    candidate = REPO.parent / "shared" / "datasets"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def raw_dir() -> pathlib.Path:
    """The raw benchmark data; CI sets CODEPROP_DATA_DIR and CODEPROP_REQUIRE_DATA=1."""
    path = _find_raw_dir()
    if path is None or not (path / "devmap" / "cgo17-amd.csv").is_file():
        if os.environ.get("CODEPROP_REQUIRE_DATA"):
            pytest.fail(f"CODEPROP_REQUIRE_DATA is set but no raw data was found at {path}")
        pytest.skip("raw benchmark data not found: set CODEPROP_DATA_DIR")
    return path


@pytest.fixture()
def in_repo(raw_dir, monkeypatch):
    """Runs the test in the repository root (gin includes are relative to it) with
    CODEPROP_DATA_DIR set to the raw data."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("CODEPROP_DATA_DIR", str(raw_dir))


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture(scope="session")
def devmap_amd(raw_dir, tfds_dir):
    from codeprop.data import benchmarks

    return benchmarks.load("devmap/amd", raw_dir=raw_dir, tfds_dir=tfds_dir)


@pytest.fixture(scope="session")
def devmap_probe_run(raw_dir, tmp_path_factory):
    """A small AST + GCN probe on devmap-amd (2 folds, 1 epoch): (workdir, results)."""
    from codeprop.models import gnn
    from codeprop.probes import graph_probe
    from codeprop.train import classifier

    workdir = tmp_path_factory.mktemp("devmap_probe")
    results = graph_probe.run_graph_probe(
        workdir=workdir,
        benchmark="devmap/amd",
        model=gnn.GCNConfig(hidden_dim=32, embed_dim=36),
        train=classifier.TrainConfig(epochs=1, learning_rate=0.01),
        max_folds=2,
        raw_dir=str(raw_dir),
    )
    return workdir, results


@pytest.fixture(scope="session")
def devmap_bytes_run(raw_dir, tmp_path_factory):
    """A bag-of-bytes baseline on devmap-amd, the same 2 folds: (workdir, results)."""
    from codeprop.probes import features_probe

    workdir = tmp_path_factory.mktemp("devmap_bytes")
    results = features_probe.run_features_probe(
        workdir=workdir,
        benchmark="devmap/amd",
        features="tokens",
        max_folds=2,
        raw_dir=str(raw_dir),
    )
    return workdir, results


def run_on_simulated_devices(code: str, num_devices: int = 8):
    """Runs `code` in a fresh Python with `num_devices` simulated CPU devices (XLA's flag
    must be set before JAX starts) and returns the JSON it writes to stdout."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={num_devices}"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def run_side_by_side(code: str, *args: str, copies: int = 2) -> list[str]:
    """Runs `copies` Pythons on `code` with `args` at the same time; their stdouts (each
    must exit 0)."""
    import subprocess
    import sys

    children = [
        subprocess.Popen(
            [sys.executable, "-c", code, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(copies)
    ]
    outs = [child.communicate() for child in children]
    assert [child.returncode for child in children] == [0] * copies, [e[-2000:] for _, e in outs]
    return [out for out, _ in outs]


def write_bpe_tokenizer(directory: pathlib.Path, vocab_size: int = 400) -> pathlib.Path:
    """A byte-level BPE ``tokenizer.json`` trained on `SMALL_C_PROGRAMS`, with StarCoder's
    special tokens, written to `directory`; returns its path."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    bpe.train_from_iterator(SMALL_C_PROGRAMS * 20, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    bpe.save(str(directory / "tokenizer.json"))
    return directory / "tokenizer.json"


def halves_and_quarters(n: int) -> dict:
    """A split of rows 0..n-1: the first half trains, the next quarter validates, the last
    quarter tests (the heads' tests)."""
    import numpy as np

    rows = np.arange(n)
    return {
        "train": rows[: n // 2],
        "validation": rows[n // 2 : 3 * n // 4],
        "test": rows[3 * n // 4 :],
    }
