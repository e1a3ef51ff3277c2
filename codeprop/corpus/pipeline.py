"""The pretraining corpus pipeline: sources -> rule filters -> dedup -> quality -> perplexity.

`run` reads every source (`codeprop.corpus.sources`), then passes the documents through the
stages in `STAGES`; each stage keeps a document or drops it with a reason, and a `Ledger`
counts documents and bytes per stage, language and reason. It writes to ``out_dir``:

  kept.jsonl     one kept document per line: id, path, language, quality_score, content
  dropped.jsonl  one dropped document per line: id, path, language, stage, reason, and for
                 duplicates ``duplicate_of`` (the id of the document that was kept)
  report.json    sources (the default corpus lists its roots), settings, per-stage
                 accounting, the per-language table (CodeShell's Table 1) and totals

Every input document is in exactly one of the two JSONL files (checked before writing).

    python -m codeprop.corpus --source default --source my_repo/ --out corpus/
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import time

from codeprop.corpus import accounting, dedup, filters, quality, sources
from codeprop.corpus import perplexity as perplexity_lib

STAGES = (
    "read",
    "language",
    "language_volume",
    "rules",
    "exact_dedup",
    "near_dedup",
    "quality",
    "learned_quality",
    "perplexity",
)


@dataclasses.dataclass(frozen=True)
class LearnedQualityConfig:
    """A trained `codeprop.corpus.quality_model.QualityScorer` (its directory) and the
    lowest expected score (0..5) kept."""

    path: str
    threshold: float = 2.5


@dataclasses.dataclass(frozen=True)
class CorpusConfig:
    """Settings of every stage.

    Attributes:
      filters: the rule filters' thresholds.
      dedup: near-duplicate settings.
      quality: quality ranges and the score threshold.
      quality_filter: drop documents scoring below ``quality.threshold`` (else score only).
      languages: keep only these languages (None: every known language).
      min_language_bytes: drop languages with less data than this in the read corpus
        (CodeShell drops languages under 100 MB).
      max_files_per_root: cap on files per root of the default corpus (tests, demos).
      learned_quality: the learned scorer and its threshold; None keeps every document at
        that stage.
      perplexity: the perplexity filter's model and percentile; None keeps every document
        at that stage.
    """

    filters: filters.FilterConfig = filters.FilterConfig()
    dedup: dedup.DedupConfig = dedup.DedupConfig()
    quality: quality.QualityConfig = quality.QualityConfig()
    quality_filter: bool = True
    languages: tuple[str, ...] | None = None
    min_language_bytes: int = 0
    max_files_per_root: int | None = None
    learned_quality: LearnedQualityConfig | None = None
    perplexity: perplexity_lib.PerplexityConfig | None = None


def language_reason(doc: sources.Document, wanted: set[str] | None) -> str | None:
    if doc.language == "unknown":
        return "unknown_language"
    if wanted is not None and doc.language not in wanted:
        return "language_not_selected"
    return None


def volume_reason(doc: sources.Document, volume: dict[str, int], min_bytes: int) -> str | None:
    return "language_below_min_bytes" if volume.get(doc.language, 0) < min_bytes else None


def quality_decision(doc: sources.Document, config: CorpusConfig) -> tuple[str | None, float]:
    """(reason to drop or None, the document's quality score)."""
    value = quality.score(quality.metrics(doc.content, doc.language), doc.language, config.quality)
    low = config.quality_filter and value < config.quality.threshold
    return ("quality_score_below_threshold" if low else None), value


def learned_quality_reasons(texts: list[str], config: CorpusConfig) -> list[str | None]:
    """The learned-quality stage: drop expected scores below the threshold."""
    if config.learned_quality is None or not texts:
        return [None] * len(texts)
    from codeprop.corpus import quality_model

    scores = quality_model.QualityScorer.load(config.learned_quality.path).score(texts)
    low = scores < config.learned_quality.threshold
    return ["learned_quality_below_threshold" if x else None for x in low]


def perplexity_reasons(texts: list[str], config: CorpusConfig) -> list[str | None]:
    """The perplexity stage over the documents that reach it (a corpus-wide percentile)."""
    if config.perplexity is None or not texts:
        return [None] * len(texts)
    values = perplexity_lib.Scorer(config.perplexity).score(texts)
    reason = f"perplexity_above_p{config.perplexity.percentile:g}"
    return [
        reason if high else None
        for high in perplexity_lib.above_percentile(values, config.perplexity.percentile)
    ]


def kept_record(doc: sources.Document, score: float) -> dict:
    return {
        "id": doc.id,
        "path": doc.path,
        "language": doc.language,
        "quality_score": round(score, 4),
        "content": doc.content,
    }


def dropped_record(doc: sources.Document, stage: str, reason: str, duplicate_of=None) -> dict:
    record = {"id": doc.id, "path": doc.path, "language": doc.language, "stage": stage,
              "reason": reason}  # fmt: skip
    if duplicate_of is not None:
        record["duplicate_of"] = duplicate_of
    return record


def make_report(described, config, ledger, before, after, seconds) -> dict:
    """The report of a run from its ledger and per-language sizes before and after."""
    summary = ledger.summary(STAGES)
    read, last = summary["read"]["total"], summary[STAGES[-1]]["total"]
    dropped = sum(
        v["docs"] for stage in summary.values() for v in stage["total"]["dropped"].values()
    )
    return {
        "sources": described,
        "settings": dataclasses.asdict(config),
        "totals": {
            "documents": read["in"]["docs"],
            "kept": last["kept"]["docs"],
            "dropped": dropped,
            "bytes_in": read["in"]["bytes"],
            "bytes_kept": last["kept"]["bytes"],
        },
        "stages": summary,
        "languages": accounting.language_table(before, after),
        "seconds": seconds,
    }


class _Run:
    """Documents still in the pipeline, the drop records and the ledger."""

    def __init__(self, documents: list[sources.Document]):
        self.alive = documents
        self.dropped: list[dict] = []
        self.ledger = accounting.Ledger()
        self.scores: dict[str, float] = {}

    def stage(self, name: str, reasons: list[str | None], duplicate_of=None) -> None:
        """Applies one stage's decisions (a reason or None per alive document)."""
        kept = []
        for i, (doc, reason) in enumerate(zip(self.alive, reasons, strict=True)):
            self.ledger.record(name, doc.language, doc.size, reason)
            if reason is None:
                kept.append(doc)
                continue
            dup = None
            if duplicate_of is not None and duplicate_of[i] is not None:
                dup = self.alive[duplicate_of[i]].id
            record = dropped_record(doc, name, reason, dup)
            self.dropped.append(record)
        self.alive = kept


def run(
    source_specs: list[str], out_dir: str | os.PathLike, config: CorpusConfig = CorpusConfig()
) -> dict:
    """Runs the pipeline over the sources and writes kept.jsonl, dropped.jsonl, report.json.

    Returns:
      The report (also in ``out_dir/report.json``).
    """
    start = time.perf_counter()
    documents, described = [], []
    for spec in source_specs:
        docs, description = sources.read(spec, config.max_files_per_root)
        description["documents"] = len(docs)
        described.append(description)
        documents.extend(docs)
    ids = collections.Counter(doc.id for doc in documents)
    repeated = [i for i, n in ids.items() if n > 1]
    if repeated:
        raise ValueError(
            f"document ids occur more than once (a source given twice?): {repeated[:5]}"
        )
    state = _Run(documents)
    seconds = {}

    def timed(name, reasons, duplicate_of=None):
        state.stage(name, reasons, duplicate_of)
        seconds[name] = round(time.perf_counter() - stage_start, 3)

    stage_start = time.perf_counter()
    timed("read", [doc.error for doc in state.alive])
    stage_start = time.perf_counter()
    wanted = set(config.languages) if config.languages else None
    timed("language", [language_reason(doc, wanted) for doc in state.alive])
    stage_start = time.perf_counter()
    volume = collections.Counter()
    for doc in state.alive:
        volume[doc.language] += doc.size
    timed(
        "language_volume",
        [volume_reason(doc, volume, config.min_language_bytes) for doc in state.alive],
    )
    stage_start = time.perf_counter()
    timed("rules", [filters.apply(doc.content, config.filters) for doc in state.alive])
    stage_start = time.perf_counter()
    exact = dedup.exact_duplicates([doc.content for doc in state.alive])
    timed("exact_dedup", ["exact_duplicate" if d is not None else None for d in exact], exact)
    stage_start = time.perf_counter()
    near = dedup.near_duplicates([doc.content for doc in state.alive], config.dedup)
    timed("near_dedup", ["near_duplicate" if d is not None else None for d in near], near)
    stage_start = time.perf_counter()
    reasons = []
    for doc in state.alive:
        reason, state.scores[doc.id] = quality_decision(doc, config)
        reasons.append(reason)
    timed("quality", reasons)
    stage_start = time.perf_counter()
    timed("learned_quality", learned_quality_reasons([d.content for d in state.alive], config))
    stage_start = time.perf_counter()
    timed("perplexity", perplexity_reasons([doc.content for doc in state.alive], config))

    if len(state.alive) + len(state.dropped) != len(documents):
        raise AssertionError("the pipeline lost documents")  # Never expected; checked anyway.
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    before, after = collections.defaultdict(accounting._zero), {}
    for doc in documents:
        if doc.error is None:
            before[doc.language]["docs"] += 1
            before[doc.language]["bytes"] += doc.size
    with open(out / "kept.jsonl", "w", encoding="utf-8") as f:
        for doc in state.alive:
            entry = after.setdefault(doc.language, {"docs": 0, "tokens": 0})
            entry["docs"] += 1
            entry["tokens"] += accounting.count_tokens(doc.content)
            record = kept_record(doc, state.scores[doc.id])
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    with open(out / "dropped.jsonl", "w", encoding="utf-8") as f:
        for record in state.dropped:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    seconds["total"] = round(time.perf_counter() - start, 3)
    report = make_report(described, config, state.ledger, dict(before), after, seconds)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def summary_lines(report: dict) -> list[str]:
    """A short terminal summary: totals, drops per stage and reason, top languages."""
    t = report["totals"]
    lines = [f"{t['documents']} documents: {t['kept']} kept, {t['dropped']} dropped"]
    for stage in STAGES:
        dropped = report["stages"].get(stage, {}).get("total", {}).get("dropped", {})
        for reason, value in dropped.items():
            lines.append(
                f"  {stage:15s} {reason:32s} {value['docs']:7d} docs {value['bytes']:12d} bytes"
            )
    for row in report["languages"][:10]:
        lines.append(
            f"  {row['language']:12s} {row['files_before']:7d} files"
            f" {row['size_mb_before']:9.2f} MB -> {row['files_after']:7d} files"
            f" {row['tokens_after']:10d} tokens"
        )
    return lines
