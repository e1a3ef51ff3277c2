"""The code LM's POJ-104 source holds no program that a probe validates or tests on."""

import inspect

import numpy as np
import pytest

from codeprop.corpus import sources
from codeprop.data import benchmarks, splits
from codeprop.probes import llm_probe, protocol


def test_the_probes_split_seed_is_the_one_the_source_excludes():
    for fn in (protocol.run, llm_probe.run_llm_probe):
        assert inspect.signature(fn).parameters["split_seed"].default == splits.PROBE_SEED
    defaults = inspect.signature(sources.poj104_training).parameters["seeds"].default
    assert defaults == (splits.PROBE_SEED,)


def test_only_programs_every_probe_split_trains_on(raw_dir, tfds_dir):
    documents, description = sources.poj104_training(raw_dir=raw_dir, tfds_dir=tfds_dir)
    bench = benchmarks.load("poj104", raw_dir=raw_dir, tfds_dir=tfds_dir)
    ids = [f"poj104-train:{e['problem']}/{e['index']}" for e in bench.examples]
    kept = {d.id for d in documents}
    train = np.ones(len(ids), bool)
    for name in ("per_class_3_1_1", "holdout"):
        (split,) = protocol.make_splits(bench.labels, name, 1, splits.PROBE_SEED)
        for part in ("validation", "test"):
            assert not kept & {ids[i] for i in split[part]}, (name, part)
        train &= np.isin(np.arange(len(ids)), split["train"])
    assert kept == {ids[i] for i in np.flatnonzero(train)}
    assert description["training_programs"] == len(documents) == 31_200
    assert description["held_out_programs"] == 52_000 - 31_200
    assert {d.language for d in documents} == {"cpp"} and all(d.content for d in documents)
    by_id = {f"poj104-train:{e['problem']}/{e['index']}": e["text"] for e in bench.examples}
    assert all(by_id[d.id] == d.content for d in documents[:500])


def test_kfold_and_malformed_specs_are_refused():
    with pytest.raises(ValueError, match="kfold holds out every program"):
        sources.poj104_training(("kfold",))
    with pytest.raises(ValueError, match="SEEDS must be integers"):
        sources.read("poj104-train:holdout:x")
    with pytest.raises(ValueError, match=r"expected poj104-train\[:PROTOCOLS\[:SEEDS\]\]"):
        sources.read("poj104-train:a:1:2")
