"""Exact and near-duplicate removal, deterministic (the first document of a group stays).

- Exact: the MD5 of the normalised content (newlines unified, trailing whitespace and
  leading/trailing blank lines removed).
- Near: MinHash signatures (datasketch, fixed seed) of word-token shingles, locality-
  sensitive hashing with bands tuned for the Jaccard threshold (documents sharing a band
  share a bucket), the estimated Jaccard similarity of each bucket's first document and
  each other member checked against the threshold, and union-find over the confirmed
  pairs. In each cluster the document that comes first in input order is kept;
  the others are dropped as duplicates *of it*.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Sequence

import numpy as np
from datasketch import MinHash, MinHashLSH

_TOKEN = re.compile(r"\w+")


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    """Near-duplicate settings (the defaults follow StarCoder's: 5-grams, 0.7 Jaccard)."""

    num_perm: int = 128
    shingle_size: int = 5
    threshold: float = 0.7
    seed: int = 1


def normalise(content: str) -> str:
    lines = [
        line.rstrip() for line in content.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    ]
    return "\n".join(lines).strip("\n")


def md5(content: str) -> str:
    return hashlib.md5(normalise(content).encode("utf-8", "surrogatepass")).hexdigest()


def exact_duplicates(contents: Sequence[str]) -> list[int | None]:
    """For each document, the index of the earlier identical one it duplicates, or None."""
    first: dict[str, int] = {}
    out: list[int | None] = []
    for i, content in enumerate(contents):
        digest = md5(content)
        if digest in first:
            out.append(first[digest])
        else:
            first[digest] = i
            out.append(None)
    return out


def shingles(content: str, size: int) -> set[bytes]:
    tokens = _TOKEN.findall(content)
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


def signature(content: str, config: DedupConfig) -> MinHash:
    m = MinHash(num_perm=config.num_perm, seed=config.seed)
    m.update_batch(sorted(shingles(content, config.shingle_size)))
    return m


class UnionFind:
    """Disjoint sets over 0..n-1; the root of a set is its smallest member."""

    def __init__(self, n: int):
        self.parent = np.arange(n)

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:  # path compression
            self.parent[i], i = root, self.parent[i]
        return int(root)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def band_params(config: DedupConfig) -> tuple[int, int]:
    """(bands, rows per band) that minimise false positives and negatives around the
    threshold (datasketch's choice for `MinHashLSH`)."""
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    return lsh.b, lsh.r


def band_keys(hashvalues: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per band: the band's index and its rows of the signature."""
    return [bytes([b]) + hashvalues[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.mean(a == b))


def bucket_edges(members: list[tuple[int, np.ndarray]], threshold: float) -> list[tuple[int, int]]:
    """Confirmed pairs of one LSH bucket: its first member (in input order) with each other
    member whose estimated Jaccard similarity reaches the threshold (linear per bucket)."""
    members = sorted(members, key=lambda m: m[0])
    first, signature_0 = members[0]
    return [(first, i) for i, sig in members[1:] if jaccard(signature_0, sig) >= threshold]


def near_duplicates(
    contents: Sequence[str], config: DedupConfig = DedupConfig()
) -> list[int | None]:
    """For each document, the index of the kept document of its near-duplicate cluster
    (the cluster's first), or None if it is kept itself."""
    bands, rows = band_params(config)
    buckets: dict[bytes, list[tuple[int, np.ndarray]]] = {}
    for i, content in enumerate(contents):
        hashvalues = signature(content, config).hashvalues
        for key in band_keys(hashvalues, bands, rows):
            buckets.setdefault(key, []).append((i, hashvalues))
    clusters = UnionFind(len(contents))
    for members in buckets.values():
        for a, b in bucket_edges(members, config.threshold):
            clusters.union(a, b)
    out: list[int | None] = []
    for i in range(len(contents)):
        root = clusters.find(i)
        out.append(None if root == i else root)
    return out
