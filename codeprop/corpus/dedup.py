"""Exact and near-duplicate removal, deterministic (the first document of a group stays).

- Exact: the MD5 of the normalised content (newlines unified, trailing whitespace and
  leading/trailing blank lines removed).
- Near: MinHash signatures (numpy, vectorised over shingles and hash functions;
  multiply-shift hashing) of word-token shingles, locality-sensitive hashing with bands
  tuned for the Jaccard threshold (documents sharing a band share a bucket), every pair of
  a bucket verified (`bucket_pairs`), and union-find over the confirmed pairs. A pair is
  confirmed by its estimated Jaccard similarity when the estimate is clear of the
  threshold by more than `DedupConfig.close_call` (three standard deviations of the
  estimate at the threshold, for 128 hash functions); closer calls are settled by the
  exact Jaccard similarity of the two shingle sets (`exact_jaccard`), so no pair is lost
  or gained to the estimate's noise. In each cluster the document that comes first in
  input order is kept; the others are dropped as duplicates *of it*.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Sequence

import numpy as np
from datasketch import MinHashLSH

_TOKEN = re.compile(r"\w+")


@dataclasses.dataclass(frozen=True)
class DedupConfig:
    """Near-duplicate settings (the defaults follow StarCoder's: 5-grams, 0.7 Jaccard).

    Attributes:
      num_perm: hash functions of a MinHash signature.
      shingle_size: tokens per shingle.
      threshold: Jaccard similarity from which two documents are near duplicates.
      seed: of the hash functions.
      close_call: estimates within this of the threshold are settled exactly.
      false_negative_weight: how much the LSH band choice (`band_params`) weighs missed
        pairs against candidate pairs below the threshold. Every candidate is verified, so
        a false candidate costs only time: 0.8 gives 18 bands of 7 rows, which misses a
        pair at exactly the threshold with probability 0.21 (0.56 for the even weighting's
        14 x 9, datasketch's default).
    """

    num_perm: int = 128
    shingle_size: int = 5
    threshold: float = 0.7
    seed: int = 1
    close_call: float = 0.12
    false_negative_weight: float = 0.8


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
    """The set of ``size``-token shingles (for inspection and tests; `signature` hashes
    the same shingles without building them)."""
    tokens = _TOKEN.findall(content)
    if len(tokens) <= size:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + size]).encode() for i in range(len(tokens) - size + 1)}


_MAX_HASH = np.uint64((1 << 32) - 1)
_SHINGLE_BASE = np.uint64(1_000_003)
_BLOCK = 8192  # shingles per block of the signature computation (bounds memory)


@functools.cache
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The (a, b) of the multiply-shift hash functions ``(a x + b mod 2^64) >> 32``
    (a odd): universal, and free of the division that ``mod p`` families cost."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, np.iinfo(np.uint64).max, size=num_perm, dtype=np.uint64)
    return a, b


_WORD_BYTE = np.zeros(256, bool)
_WORD_BYTE[list(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")] = True
_WORD_BYTE[0x80:] = True  # UTF-8 bytes of non-ASCII characters count as word characters
_BYTE_BASE = 0x100000001B3  # odd, so invertible modulo 2^64
_BYTE_BASE_INVERSE = pow(_BYTE_BASE, -1, 2**64)


_CACHED_POWERS = 1 << 22  # documents up to 4 MiB reuse cached power tables (64 MiB)


@functools.cache
def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``B^j`` and ``B^-j`` modulo 2^64 for j < length (length a power of two, cached)."""
    with np.errstate(over="ignore"):
        one = np.ones(1, np.uint64)
        powers = np.concatenate([one, np.cumprod(np.full(length - 1, _BYTE_BASE, np.uint64))])
        inverse = np.concatenate(
            [one, np.cumprod(np.full(length - 1, _BYTE_BASE_INVERSE, np.uint64))]
        )
    powers.flags.writeable = inverse.flags.writeable = False
    return powers, inverse


def token_hashes(content: str) -> np.ndarray:
    """[tokens] 64-bit hashes of the content's word tokens (runs of ASCII letters, digits,
    ``_`` and non-ASCII bytes), all with numpy: a token's hash is the polynomial
    ``sum (byte_j + 1) * B^(j - start)`` modulo 2^64, from prefix sums."""
    data = np.frombuffer(content.encode("utf-8", "surrogatepass"), np.uint8)
    if not len(data):
        return np.zeros(0, np.uint64)
    edges = np.diff(np.concatenate([[0], _WORD_BYTE[data].view(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    length = max(1024, 1 << (len(data) - 1).bit_length())
    powers, inverse = (_powers if length <= _CACHED_POWERS else _powers.__wrapped__)(length)
    with np.errstate(over="ignore"):
        prefix = np.empty(len(data) + 1, np.uint64)
        prefix[0] = 0
        np.cumsum((data + np.uint64(1)) * powers[: len(data)], out=prefix[1:])
        return (prefix[ends] - prefix[starts]) * inverse[starts]


def shingle_hashes(content: str, size: int) -> np.ndarray:
    """[S] distinct 32-bit hashes of the ``size``-token shingles (a polynomial of the
    token hashes, over all shingles at once)."""
    hashes = token_hashes(content)
    if len(hashes) < size:
        hashes = np.concatenate([hashes, np.zeros(size - len(hashes), np.uint64)])
    n = len(hashes) - size + 1
    combined = hashes[:n].copy()
    with np.errstate(over="ignore"):
        for k in range(1, size):  # uint64 arithmetic wraps modulo 2^64: deterministic
            combined = combined * _SHINGLE_BASE + hashes[k : k + n]
    return np.unique((combined ^ (combined >> np.uint64(32))) & _MAX_HASH)


def signature(content: str, config: DedupConfig) -> np.ndarray:
    """[num_perm] MinHash signature (uint64 values below 2^32) of the content's shingles."""
    a, b = _permutations(config.num_perm, config.seed)
    hashes = shingle_hashes(content, config.shingle_size)
    out = np.full(config.num_perm, _MAX_HASH, np.uint64)
    for start in range(0, len(hashes), _BLOCK):
        block = hashes[start : start + _BLOCK]
        permuted = np.multiply(a[:, None], block[None, :])  # [P, block], wraps mod 2^64
        permuted += b[:, None]
        permuted >>= np.uint64(32)
        np.minimum(out, permuted.min(axis=1), out=out)
    return out


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
    """(bands, rows per band) that minimise the weighted false positives and negatives
    around the threshold (datasketch's optimisation for `MinHashLSH`, with
    `DedupConfig.false_negative_weight`)."""
    weights = (1 - config.false_negative_weight, config.false_negative_weight)
    lsh = MinHashLSH(threshold=config.threshold, num_perm=config.num_perm, weights=weights)
    return lsh.b, lsh.r


def band_keys(hashvalues: np.ndarray, bands: int, rows: int) -> list[bytes]:
    """One bucket key per band: the band's index and its rows of the signature."""
    return [bytes([b]) + hashvalues[b * rows : (b + 1) * rows].tobytes() for b in range(bands)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Estimated Jaccard similarity of two MinHash signatures."""
    return float(np.mean(a == b))


def bucket_pairs(
    members: list[tuple[int, np.ndarray]], config: DedupConfig
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Every pair of one LSH bucket, by estimated Jaccard similarity: the confirmed pairs
    (estimate at least ``threshold + close_call``) and the close calls (within
    ``close_call`` of the threshold, for `exact_jaccard` to settle), each as (earlier,
    later) in input order.

    All pairs, not only the first member's: in a bucket {a, b, c} where b and c are near
    duplicates of each other but not of a, checking against a alone would miss them.
    Quadratic in a bucket's size, one vectorised comparison per member; LSH buckets of
    distinct documents are small.
    """
    if len(members) < 2:
        return [], []
    members = sorted(members, key=lambda m: m[0])
    ids = [i for i, _ in members]
    signatures = np.stack([sig for _, sig in members])  # [M, P]
    confirmed, close = [], []
    low, high = config.threshold - config.close_call, config.threshold + config.close_call
    for a in range(len(members) - 1):
        estimate = (signatures[a + 1 :] == signatures[a]).mean(axis=1)  # [M-a-1]
        confirmed.extend((ids[a], ids[a + 1 + b]) for b in np.flatnonzero(estimate >= high))
        near = (estimate >= low) & (estimate < high)
        close.extend((ids[a], ids[a + 1 + b]) for b in np.flatnonzero(near))
    return confirmed, close


def exact_jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two documents' shingle sets (`shingle_hashes`: sorted,
    distinct)."""
    common = np.intersect1d(a, b, assume_unique=True).size
    return common / max(a.size + b.size - common, 1)


def near_duplicates(
    contents: Sequence[str], config: DedupConfig = DedupConfig()
) -> list[int | None]:
    """For each document, the index of the kept document of its near-duplicate cluster
    (the cluster's first), or None if it is kept itself."""
    bands, rows = band_params(config)
    buckets: dict[bytes, list[tuple[int, np.ndarray]]] = {}
    for i, content in enumerate(contents):
        hashvalues = signature(content, config)
        for key in band_keys(hashvalues, bands, rows):
            buckets.setdefault(key, []).append((i, hashvalues))
    clusters = UnionFind(len(contents))
    close_calls = set()
    for members in buckets.values():
        confirmed, close = bucket_pairs(members, config)
        for a, b in confirmed:
            clusters.union(a, b)
        close_calls.update(close)
    shingles = functools.lru_cache(maxsize=4096)(
        lambda i: shingle_hashes(contents[i], config.shingle_size)
    )
    for a, b in sorted(close_calls):
        if exact_jaccard(shingles(a), shingles(b)) >= config.threshold:
            clusters.union(a, b)
    out: list[int | None] = []
    for i in range(len(contents)):
        root = clusters.find(i)
        out.append(None if root == i else root)
    return out
