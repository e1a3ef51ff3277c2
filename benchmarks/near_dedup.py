"""Near-duplicate detection, codeprop against datasketch, rensa and datatrove: throughput
and recall on the same corpus with the same shingles (5 `\\w+` tokens), 128 hash functions
and Jaccard threshold 0.7, in one run; plus the whole corpus pipeline's MB/s.

Bands: the peers use datasketch's even weighting of false positives and negatives (14
bands of 9 rows; datatrove and rensa are given the same), codeprop its default, which
favours recall (18 x 7, `DedupConfig.false_negative_weight`); codeprop is also run with
the peers' 14 x 9 (row ``codeprop_14x9``).

    .venv/bin/python benchmarks/near_dedup.py --out /tmp/bench/near_dedup.json
    .venv/bin/python benchmarks/near_dedup.py --recall_seeds 1,2,3,4   # recall only

``--recall_seeds`` measures how the misses vary with the hash functions' seed: codeprop
(both band choices) and datasketch once per seed, candidates pooled over all runs.

Recall: every pair of documents that some implementation puts in one cluster is a
candidate; its exact Jaccard similarity (of the shingle sets) is computed, and each
implementation is charged with the candidates at or above the threshold that it leaves in
different clusters ("missed"), and with those whose two documents it both keeps
("both_kept": duplicates left in its output). No implementation checks all 48 million
pairs, so a pair that none of them proposes is not counted.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import re
import struct
import tempfile
import time

import numpy as np
import rensa
import timing
from datasketch import MinHash, MinHashLSH
from datatrove.data import Document
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import minhash as datatrove_minhash
from datatrove.utils.text import TextNormConfig
from datatrove.utils.word_tokenizers import WordTokenizer

from codeprop.corpus import dedup, pipeline, sources


def even(config: dedup.DedupConfig) -> dedup.DedupConfig:
    """The same settings with datasketch's even weighting of the band choice (14 x 9)."""
    return dataclasses.replace(config, false_negative_weight=0.5)


def clusters_of(union_find: dedup.UnionFind, n: int) -> np.ndarray:
    """[n] the root of each document's cluster."""
    return np.array([union_find.find(i) for i in range(n)])


def query_verify_insert(contents, config, new_minhash, lsh) -> np.ndarray:
    """The peers' LSH loop, as their documentation uses it: each document's MinHash
    queries the index, every candidate is verified by estimated Jaccard, confirmed pairs
    are joined by union-find, and the document is inserted."""
    signatures = []
    clusters = dedup.UnionFind(len(contents))
    for i, content in enumerate(contents):
        m = new_minhash()
        m.update(list(dedup.shingles(content, config.shingle_size)))
        for j in lsh.query(m):
            if m.jaccard(signatures[j]) >= config.threshold:
                clusters.union(i, j)
        lsh.insert(i, m)
        signatures.append(m)
    return clusters_of(clusters, len(contents))


class _DatasketchMinHash(MinHash):
    """datasketch's MinHash with ``update`` taking all shingles at once (its batch call)."""

    def update(self, shingles):
        self.update_batch(shingles)


def datasketch_clusters(contents, config) -> np.ndarray:
    """datasketch's MinHash (sha1-based hashing) and MinHashLSH (its band choice)."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    new = lambda: _DatasketchMinHash(num_perm=config.num_perm, seed=config.seed)  # noqa: E731
    return query_verify_insert(contents, config, new, lsh)


def rensa_clusters(contents, config) -> np.ndarray:
    """rensa's R-MinHash and LSH (Rust), with datasketch's bands (14 x 9)."""
    bands, rows = dedup.band_params(even(config))
    lsh = rensa.RMinHashLSH(config.threshold, bands * rows, bands)
    new = lambda: rensa.RMinHash(bands * rows, config.seed)  # noqa: E731
    return query_verify_insert(contents, config, new, lsh)


class WordTokens(WordTokenizer):
    """datatrove's shingles over the same tokens as codeprop's (`\\w+`)."""

    _word = re.compile(r"\w+")

    def word_tokenize(self, text: str, **kwargs) -> list[str]:
        return self._word.findall(text)

    def sent_tokenize(self, text: str, **kwargs) -> list[str]:
        raise NotImplementedError

    def span_tokenize(self, text: str, **kwargs) -> list[tuple[int, int]]:
        raise NotImplementedError


def _encodable(text: str) -> str:
    return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def datatrove_clusters(contents, config, workdir: str) -> np.ndarray:
    """datatrove's MinHash pipeline as its documentation runs it: signatures, buckets (one
    task per band), clusters; on local disk. It joins every band collision without
    verifying it. Text normalisation off, so its shingles are codeprop's."""
    bands, rows = dedup.band_params(even(config))
    minhash = datatrove_minhash.MinhashConfig(
        n_grams=config.shingle_size,
        num_buckets=bands,
        hashes_per_bucket=rows,
        seed=config.seed,
        norm_config=TextNormConfig(
            lowercase=False,
            norm_whitespace=False,
            remove_punctuation=False,
            norm_unicode_diacritics=False,
            norm_numbers=False,
        ),
    )
    # xxhash takes no lone surrogates (undecodable bytes kept by `sources`): replace them.
    docs = [Document(text=_encodable(c), id=str(i)) for i, c in enumerate(contents)]
    stages = [
        ([docs, datatrove_minhash.MinhashDedupSignature(
            f"{workdir}/sigs", minhash, language=WordTokens())], 1),
        ([datatrove_minhash.MinhashDedupBuckets(
            f"{workdir}/sigs", f"{workdir}/buckets", config=minhash)], bands),
        ([datatrove_minhash.MinhashDedupCluster(
            f"{workdir}/buckets", f"{workdir}/clusters", config=minhash, save_cluster_id=True
        )], 1),
    ]  # fmt: skip
    for i, (steps, tasks) in enumerate(stages):
        LocalPipelineExecutor(steps, tasks=tasks, workers=1, logging_dir=f"{workdir}/log{i}").run()
    roots = np.arange(len(contents))
    first_of_cluster: dict[int, int] = {}
    with open(f"{workdir}/clusters/000000.clusters", "rb") as f:
        for doc, cluster in struct.iter_unpack("<2I", f.read()):
            roots[doc] = first_of_cluster.setdefault(cluster, doc)
    return roots


def byte_scan_floor(contents) -> float:
    """Seconds for the least any numpy word tokeniser must do over the corpus: one table
    lookup per byte (word byte or not) and one difference (token starts and ends)."""
    data = np.frombuffer("\n".join(contents).encode("utf-8", "surrogatepass"), np.uint8)
    start = time.perf_counter()
    np.diff(dedup._WORD_BYTE[data].view(np.int8))
    return time.perf_counter() - start


def recall(found: dict[str, np.ndarray], contents, config) -> dict:
    """Candidate pairs (co-clustered by any implementation), their exact Jaccard, and the
    pairs at or above the threshold that each implementation misses."""
    candidates = set()
    for roots in found.values():
        members = collections.defaultdict(list)
        for i, root in enumerate(roots):
            members[int(root)].append(i)
        for group in members.values():
            candidates.update((a, b) for k, a in enumerate(group) for b in group[k + 1 :])
    shingles = {}

    def shingles_of(i):
        if i not in shingles:
            shingles[i] = dedup.shingles(contents[i], config.shingle_size)
        return shingles[i]

    similar = []
    for a, b in sorted(candidates):
        sa, sb = shingles_of(a), shingles_of(b)
        if len(sa & sb) >= config.threshold * len(sa | sb):
            similar.append((a, b))
    return {
        "candidate_pairs": len(candidates),
        "pairs_at_or_above_threshold": len(similar),
        "missed": {
            name: int(sum(roots[a] != roots[b] for a, b in similar))
            for name, roots in found.items()
        },
        # Of those, pairs whose documents are both kept: duplicates left in the output.
        "both_kept": {
            name: int(sum(roots[a] == a and roots[b] == b for a, b in similar))
            for name, roots in found.items()
        },
    }


def ours(contents, config) -> np.ndarray:
    return np.array([i if d is None else d for i, d in enumerate(dedup.near_duplicates(
        contents, config))])  # fmt: skip


def recall_over_seeds(contents, seeds: list[int]) -> dict:
    found = {}
    for seed in seeds:
        config = dedup.DedupConfig(seed=seed)
        found[f"codeprop seed {seed}"] = ours(contents, config)
        found[f"codeprop_14x9 seed {seed}"] = ours(contents, even(config))
        found[f"datasketch seed {seed}"] = datasketch_clusters(contents, config)
    return recall(found, contents, dedup.DedupConfig())


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max_files_per_root", type=int, default=None)
    parser.add_argument("--recall_seeds", default=None, help="e.g. 1,2,3,4: recall only")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    docs, roots = sources.default_corpus(args.max_files_per_root)
    contents = [d.content for d in docs if d.content]
    megabytes = sum(len(c.encode("utf-8", "surrogatepass")) for c in contents) / 1e6
    config = dedup.DedupConfig()
    if args.recall_seeds:
        seeds = [int(s) for s in args.recall_seeds.split(",")]
        timing.emit({"recall": recall_over_seeds(contents, seeds)}, args.out)
        return

    floor_s = byte_scan_floor(contents)
    found, seconds = {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        peers = {
            "codeprop": ours,
            "codeprop_14x9": lambda c, k: ours(c, even(k)),
            "datasketch": datasketch_clusters,
            "rensa": rensa_clusters,
            "datatrove": lambda c, k: datatrove_clusters(c, k, workdir),
        }
        for name, fn in peers.items():
            start = time.perf_counter()
            found[name] = fn(contents, config)
            seconds[name] = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        report = pipeline.run(
            ["default"], out, pipeline.CorpusConfig(max_files_per_root=args.max_files_per_root)
        )
        pipeline_s = time.perf_counter() - start
    surrogates = sum(_encodable(c) != c for c in contents)
    result = {
        "machine": timing.machine(),
        "corpus": {
            "documents": len(contents),
            "megabytes": round(megabytes, 1),
            "with_undecodable_bytes": surrogates,  # replaced by U+FFFD for datatrove only
            "roots": roots,
        },
        "near_dedup": {
            name: {
                "seconds": round(seconds[name], 2),
                "docs_per_s": round(len(contents) / seconds[name], 1),
                "mb_per_s": round(megabytes / seconds[name], 2),
                "duplicates": int((found[name] != np.arange(len(contents))).sum()),
            }
            for name in found
        },
        "byte_scan_floor": {
            "seconds": round(floor_s, 3),
            "mb_per_s": round(megabytes / floor_s, 1),
            "docs_per_s": round(len(contents) / floor_s, 1),
        },
        "recall": recall(found, contents, config),
        "pipeline": {
            "seconds": round(pipeline_s, 1),
            "mb_per_s": round(report["totals"]["bytes_in"] / 1e6 / pipeline_s, 2),
            "stage_seconds": report["seconds"],
        },
    }
    timing.emit(result, args.out)


if __name__ == "__main__":
    main()
