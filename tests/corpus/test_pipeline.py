"""The corpus pipeline end to end: every document accounted for, once."""

import gzip
import json
import os

from test_stages import GOOD_PY

from codeprop import main
from codeprop.corpus import pipeline, sources


def _tree(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    # Files are read in sorted order: a_ first, so it is the one kept.
    (repo / "pkg" / "a_stats.py").write_text(GOOD_PY)
    (repo / "pkg" / "b_copy.py").write_text(GOOD_PY.replace("\n", "  \n"))  # exact dup
    (repo / "pkg" / "c_renamed.py").write_text(GOOD_PY + "# The end.\n")  # near duplicate
    (repo / "gen.py").write_text("# Auto-generated file. Do not edit.\nx = 1\n")
    (repo / "notes.xyz").write_text("what language is this")
    (repo / "blob.c").write_bytes(b"\x00\x01binary")
    (repo / "latin1.c").write_bytes("/* caf\xe9 */".encode("latin-1"))
    (repo / "lib.c").write_text(
        "#include <stdio.h>\n/* Print the numbers below n that are odd. */\n"
        'void odd(int n) {\n  for (int i = 0; i < n; i++) {\n    if (i % 2) printf("%d\\n", i);\n'
        "  }\n}\n\nint twice(int x) { return 2 * x; }\n"
    )
    dump = tmp_path / "dump.jsonl.gz"
    with gzip.open(dump, "wt") as f:
        f.write(
            json.dumps(
                {
                    "content": GOOD_PY.replace("no mean", "no average"),
                    "max_stars_repo_path": "a/b.py",
                    "lang": "Python",
                }
            )
            + "\n"
        )
        f.write("{not json\n")
        f.write(json.dumps({"path": "no_content.py"}) + "\n")
        f.write(json.dumps({"content": "p 1\n", "path": "tiny.rb"}) + "\n")
    return repo, dump


def _jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_every_document_is_kept_or_dropped_once_with_a_reason(tmp_path):
    repo, dump = _tree(tmp_path)
    report = pipeline.run([str(repo), str(dump)], tmp_path / "out")
    kept, dropped = (_jsonl(tmp_path / "out" / name) for name in ("kept.jsonl", "dropped.jsonl"))
    ids = [r["id"] for r in kept] + [r["id"] for r in dropped]
    assert len(ids) == len(set(ids)) == report["totals"]["documents"] == 12
    reasons = {r["id"].split("/")[-1].split(":")[-1]: (r["stage"], r["reason"]) for r in dropped}
    assert reasons["blob.c"] == ("read", "binary (NUL bytes)")
    assert reasons["latin1.c"] == ("read", "not UTF-8")
    assert reasons["notes.xyz"] == ("language", "unknown_language")
    assert reasons["gen.py"] == ("rules", "auto_generated")
    assert reasons["2"][0] == "read" and "JSONDecodeError" in reasons["2"][1]
    assert reasons["3"][0] == "read" and "KeyError" in reasons["3"][1]
    assert reasons["b_copy.py"] == ("exact_dedup", "exact_duplicate")
    by_id = {r["id"]: r for r in dropped}
    assert by_id[f"{repo}:pkg/b_copy.py"]["duplicate_of"] == f"{repo}:pkg/a_stats.py"
    near = [r for r in dropped if r["reason"] == "near_duplicate"]
    assert {r["duplicate_of"] for r in near} == {f"{repo}:pkg/a_stats.py"}
    assert {r["id"] for r in near} == {f"{repo}:pkg/c_renamed.py", f"{dump}:1"}
    assert reasons["4"] == ("quality", "quality_score_below_threshold")  # one line of ruby
    assert sorted(r["path"] for r in kept) == [
        str(repo / "lib.c"),
        str(repo / "pkg" / "a_stats.py"),
    ]
    assert all(0.5 <= r["quality_score"] <= 1 and r["content"] for r in kept)
    # Accounting: each stage's input is the previous stage's kept documents.
    stages = report["stages"]
    for a, b in zip(pipeline.STAGES, pipeline.STAGES[1:]):
        assert stages[b]["total"]["in"] == stages[a]["total"]["kept"]
    assert stages["read"]["total"]["in"]["docs"] == 12
    assert stages["near_dedup"]["languages"]["python"]["dropped"]["near_duplicate"]["docs"] == 2
    table = {row["language"]: row for row in report["languages"]}
    assert table["python"]["files_before"] == 5 and table["python"]["files_after"] == 1
    assert table["c"]["files_after"] == 1 and table["c"]["tokens_after"] > 20


def test_language_selection_and_volume_threshold(tmp_path):
    repo, _ = _tree(tmp_path)
    report = pipeline.run(
        [str(repo)], tmp_path / "out", pipeline.CorpusConfig(min_language_bytes=500)
    )
    dropped = report["stages"]["language_volume"]["languages"]
    assert dropped["c"]["dropped"]["language_below_min_bytes"]["docs"] == 1  # lib.c: ~200 bytes
    assert "python" not in dropped or not dropped["python"]["dropped"]
    only_c = pipeline.run([str(repo)], tmp_path / "c", pipeline.CorpusConfig(languages=("c",)))
    assert only_c["stages"]["language"]["total"]["dropped"]["language_not_selected"]["docs"] == 4


def test_command_line_and_default_corpus(tmp_path, capsys):
    out = tmp_path / "out"
    code = main.corpus_main(
        ["--source", "default", "--max_files_per_root", "15", "--out", str(out)]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    roots = {r["name"] for r in report["sources"][0]["roots"]}
    assert {"python-stdlib", "python-include"} <= roots
    total = report["totals"]
    lines = len(_jsonl(out / "kept.jsonl")) + len(_jsonl(out / "dropped.jsonl"))
    assert lines == total["documents"] == report["sources"][0]["documents"] > 30
    assert total["kept"] > 0 and "documents:" in capsys.readouterr().out
    docs, _ = sources.read(f"{tmp_path}/out/*.json")
    assert [d.language for d in docs] == ["json"]


def test_tfds_source(devmap_amd, tfds_dir, monkeypatch):
    monkeypatch.setenv("CODEPROP_TFDS_DIR", str(tfds_dir))
    docs, described = sources.read("tfds:devmap/amd:full:normalized_source:opencl")
    assert len(docs) == 680 and described == {
        "source": "tfds:devmap/amd:full:normalized_source:opencl"
    }
    assert {d.language for d in docs} == {"opencl"} and all(
        "kernel" in d.content for d in docs[:20]
    )
    assert docs[3].id == "tfds:devmap/amd:full:3"


def test_bad_inputs_are_counted_drops_and_the_run_is_deterministic(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "empty.py").write_text("")
    (repo / "minified.js").write_text("var a=1;" * 400_000)  # 3.2 MB on one line
    (repo / "bytes.c").write_bytes(bytes(range(256)) * 10)
    (repo / "ok.c").write_text("int main(void) { return 0; }\n")
    first = pipeline.run([str(repo)], tmp_path / "a")
    reasons = {
        r["path"].rsplit("/", 1)[1]: r["reason"] for r in _jsonl(tmp_path / "a" / "dropped.jsonl")
    }
    assert reasons["empty.py"] == "empty" and reasons["minified.js"] == "too_large"
    assert reasons["bytes.c"] == "binary (NUL bytes)"
    assert first["totals"]["documents"] == 4
    pipeline.run([str(repo)], tmp_path / "b")
    for name in ("kept.jsonl", "dropped.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_every_entry_a_directory_walk_meets_is_accounted_for(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src").mkdir(parents=True)
    (repo / "src" / "ok.c").write_text("int main(void) { return 0; }\n")
    (repo / "src" / "linked.c").symlink_to(repo / "src" / "ok.c")  # a link to a file: read
    (repo / "gone.c").symlink_to(repo / "nowhere.c")
    (repo / "self.c").symlink_to(repo / "self.c")
    (repo / "loop").symlink_to(repo)  # a directory reached again
    os.mkfifo(repo / "pipe.c")  # never opened: reading it would block
    locked = repo / "locked"
    locked.mkdir()
    (locked / "secret.c").write_text("int x;\n")
    locked.chmod(0)
    try:
        readable = os.access(locked, os.R_OK)  # root reads it anyway
        report = pipeline.run([str(repo)], tmp_path / "out")
    finally:
        locked.chmod(0o755)
    dropped = {
        r["path"].split("repo/", 1)[1]: r["reason"]
        for r in _jsonl(tmp_path / "out" / "dropped.jsonl")
    }
    kept = sorted(r["path"].split("repo/", 1)[1] for r in _jsonl(tmp_path / "out" / "kept.jsonl"))
    assert dropped["gone.c"] == "dangling symlink"
    assert dropped["self.c"] == "symlink loop"
    assert dropped["loop"] == "a directory already walked (symlink loop or alias)"
    assert dropped["pipe.c"] == "special file (fifo)"
    if not readable:
        assert dropped["locked"] == "unreadable directory: Permission denied"
    # Every entry once: the two files (a link to a file is read), the four problems, and
    # the locked directory (or, where it is readable after all, its file).
    assert sorted([*kept, *dropped]) == sorted(
        ["src/ok.c", "src/linked.c", "gone.c", "self.c", "loop", "pipe.c"]
        + ["locked/secret.c" if readable else "locked"]
    )
    assert report["totals"]["documents"] == 7


def test_jsonl_text_is_never_altered(tmp_path):
    dump = tmp_path / "dump.jsonl"
    good = json.dumps({"content": "int main(void) { return 0; }\n", "path": "a.c"}).encode()
    nul = json.dumps({"content": "int x;\u0000\n", "path": "nul.c"}).encode()
    lone = b'{"content": "x = \\udc80\\n", "path": "lone.py"}'  # no character
    dump.write_bytes(b"\n".join([good, b'{"content": "caf\xe9", "path": "latin.c"}', nul, lone]))
    docs = list(sources.read_jsonl(dump))
    assert [d.error for d in docs] == [
        None,
        "bad JSONL line: not UTF-8",
        "binary (NUL bytes)",
        "not UTF-8",
    ]
    assert docs[0].content == "int main(void) { return 0; }\n"


def test_any_file_name_is_one_accounted_document(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    with open(os.path.join(os.fsencode(repo), b"bad\xff.c"), "w") as f:  # not UTF-8
        f.write("int main(void) { return 0; }\n")
    (repo / "new\nline.c").write_text("int f(void) { return 1; }\n")
    (repo / "kept.jsonl").write_text("the pipeline's own output name, as an input\n")
    report = pipeline.run([str(repo)], tmp_path / "out")
    records = [
        *_jsonl(tmp_path / "out" / "kept.jsonl"),
        *_jsonl(tmp_path / "out" / "dropped.jsonl"),
    ]
    names = sorted(r["path"].rsplit("/", 1)[1] for r in records)
    assert names == ["bad\\xff.c", "kept.jsonl", "new\nline.c"]
    assert report["totals"]["documents"] == 3
