"""Exact and near-duplicate removal, deterministic (the first document of a group stays).

- Exact: the MD5 of the normalised content (newlines unified, trailing whitespace and
  leading/trailing blank lines removed).
- Near: MinHash signatures (datasketch, fixed seed) of word-token shingles, locality-
  sensitive hashing with bands tuned for the Jaccard threshold (candidate pairs), the
  estimated Jaccard similarity checked against the threshold, and union-find over the
  confirmed pairs. In each cluster the document that comes first in input order is kept;
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


def near_duplicates(
    contents: Sequence[str], config: DedupConfig = DedupConfig()
) -> list[int | None]:
    """For each document, the index of the kept document of its near-duplicate cluster
    (the cluster's first), or None if it is kept itself."""
    signatures = [signature(c, config) for c in contents]
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm)
    clusters = UnionFind(len(contents))
    for i, sig in enumerate(signatures):
        for j in lsh.query(sig):  # earlier documents sharing a band
            if sig.jaccard(signatures[j]) >= config.threshold:
                clusters.union(i, j)
        lsh.insert(i, sig)
    out: list[int | None] = []
    for i in range(len(contents)):
        root = clusters.find(i)
        out.append(None if root == i else root)
    return out
