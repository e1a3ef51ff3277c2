"""The Beam pipeline (DirectRunner) gives the in-process pipeline's output."""

import json

from test_pipeline import _tree

from codeprop.corpus import beam, pipeline


def _lines(path):
    return sorted(path.read_text().splitlines())


def test_beam_matches_in_process(tmp_path):
    repo, dump = _tree(tmp_path)
    specs = [str(repo), str(dump)]
    config = pipeline.CorpusConfig(min_language_bytes=100)
    local = pipeline.run(specs, tmp_path / "local", config)
    distributed = beam.run_beam(specs, tmp_path / "beam", config)
    for name in ("kept.jsonl", "dropped.jsonl"):
        assert _lines(tmp_path / "beam" / name) == _lines(tmp_path / "local" / name)
    assert distributed["stages"] == local["stages"]
    assert distributed["totals"] == local["totals"]
    assert distributed["languages"] == local["languages"]
    assert json.loads((tmp_path / "beam" / "report.json").read_text())["runner"] == "beam"
    assert local["totals"]["dropped"] > 5 and local["totals"]["kept"] >= 2


def test_beam_matches_in_process_on_the_default_corpus(tmp_path):
    config = pipeline.CorpusConfig(max_files_per_root=40)
    local = pipeline.run(["default"], tmp_path / "local", config)
    beam.run_beam(["default"], tmp_path / "beam", config)
    for name in ("kept.jsonl", "dropped.jsonl"):
        assert _lines(tmp_path / "beam" / name) == _lines(tmp_path / "local" / name)
    assert local["stages"]["near_dedup"]["total"]["dropped"]  # there are near duplicates
