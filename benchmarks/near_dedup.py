"""Near-duplicate detection throughput: codeprop against datasketch (MinHash + MinHashLSH),
same corpus and parameters (5-token shingles, 128 hash functions, Jaccard 0.7), one run;
plus the agreement of the duplicates each finds, and the whole corpus pipeline's MB/s.

    .venv/bin/python benchmarks/near_dedup.py --out /tmp/bench/near_dedup.json
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import timing
from datasketch import MinHash, MinHashLSH

from codeprop.data import corpus, dedup, sources


def datasketch_duplicates(contents, config):
    """datasketch's MinHash (sha1-based hashing) and LSH; confirmed pairs joined by
    union-find; returns the documents that are not their cluster's first."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    signatures = []
    clusters = dedup.UnionFind(len(contents))
    for i, content in enumerate(contents):
        m = MinHash(num_perm=config.num_perm, seed=config.seed)
        m.update_batch(list(dedup.shingles(content, config.shingle_size)))
        for j in lsh.query(m):
            if m.jaccard(signatures[j]) >= config.threshold:
                clusters.union(i, j)
        lsh.insert(i, m)
        signatures.append(m)
    return {i for i in range(len(contents)) if clusters.find(i) != i}


def byte_scan_floor(contents) -> float:
    """Seconds for the least any numpy word tokeniser must do over the corpus: one table
    lookup per byte (word byte or not) and one difference (token starts and ends)."""
    data = np.frombuffer("\n".join(contents).encode("utf-8", "surrogatepass"), np.uint8)
    start = time.perf_counter()
    np.diff(dedup._WORD_BYTE[data].view(np.int8))
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_files_per_root", type=int, default=None)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    docs, roots = sources.default_corpus(args.max_files_per_root)
    contents = [d.content for d in docs if d.content]
    megabytes = sum(len(c.encode("utf-8", "surrogatepass")) for c in contents) / 1e6
    config = dedup.DedupConfig()

    floor_s = byte_scan_floor(contents)
    start = time.perf_counter()
    ours = dedup.near_duplicates(contents, config)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = datasketch_duplicates(contents, config)
    theirs_s = time.perf_counter() - start
    found = {i for i, d in enumerate(ours) if d is not None}

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = corpus.run(
            ["default"], out, corpus.CorpusConfig(max_files_per_root=args.max_files_per_root)
        )
        pipeline_s = time.perf_counter() - start
    result = {
        "machine": timing.machine(),
        "corpus": {"documents": len(contents), "megabytes": round(megabytes, 1), "roots": roots},
        "codeprop": {"seconds": round(ours_s, 2), "docs_per_s": round(len(contents) / ours_s, 1)},
        "datasketch": {
            "seconds": round(theirs_s, 2),
            "docs_per_s": round(len(contents) / theirs_s, 1),
        },
        "speedup": round(theirs_s / ours_s, 2),
        "byte_scan_floor": {
            "seconds": round(floor_s, 3),
            "mb_per_s": round(megabytes / floor_s, 1),
            "docs_per_s": round(len(contents) / floor_s, 1),
        },
        "duplicates": {
            "codeprop": len(found),
            "datasketch": len(theirs),
            "both": len(found & theirs),
            "agreement_jaccard": round(len(found & theirs) / max(len(found | theirs), 1), 3),
        },
        "pipeline": {
            "seconds": round(pipeline_s, 1),
            "mb_per_s": round(report["totals"]["bytes_in"] / 1e6 / pipeline_s, 2),
            "stage_seconds": report["seconds"],
        },
    }
    timing.emit(result, args.out)


if __name__ == "__main__":
    main()
