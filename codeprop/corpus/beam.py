"""The corpus pipeline's stages as an Apache Beam pipeline (DirectRunner here; the same
code runs on Dataflow, Flink or Spark with their pipeline options).

The per-document stages (read, language, rules, quality) are the functions of
`codeprop.corpus.pipeline`; the corpus-wide ones are Beam aggregations with the same
result as the in-process path: language volumes are a `CombinePerKey`, exact duplicates a
`GroupByKey` on the MD5, and near duplicates group documents by LSH band keys
(`codeprop.corpus.dedup.band_keys`), verify each bucket's pairs (`bucket_pairs`; close
calls get the exact Jaccard of the two documents, joined to their contents by input
order) and join the confirmed pairs into clusters with a union-find over the (few) edges,
broadcast as a side input. Within a group the document first in input order (source,
then position) is kept, as in-process. It writes the same ``kept.jsonl``,
``dropped.jsonl`` (their lines in another order) and ``report.json``.

    run_beam(["repo/", "dump.jsonl"], "corpus/", beam_options=["--runner=DirectRunner"])
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import pathlib
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from codeprop.corpus import accounting, dedup, filters, pipeline, sources
from codeprop.corpus import perplexity as perplexity_lib


@dataclasses.dataclass
class _Doc:
    order: tuple[int, int]
    doc: sources.Document
    score: float = 0.0


def _read(indexed_spec, max_files_per_root):
    index, spec = indexed_spec
    documents, _ = sources.read(spec, max_files_per_root)
    for position, doc in enumerate(documents):
        yield _Doc((index, position), doc)


class _Stage(beam.DoFn):
    """Applies one per-document decision; emits the kept document (main output), the drop
    record (``dropped``) and a ledger count (``counts``)."""

    def __init__(self, name, decide):
        self.name, self.decide = name, decide

    def process(self, item, *side):
        reason = self.decide(item, *side)
        yield beam.pvalue.TaggedOutput(
            "counts", ((self.name, item.doc.language, reason), item.doc.size)
        )
        if reason is None:
            yield item
        else:
            yield beam.pvalue.TaggedOutput(
                "dropped", pipeline.dropped_record(item.doc, self.name, reason)
            )


def _stage(pcoll, name, decide, *side):
    outputs = pcoll | name >> beam.ParDo(_Stage(name, decide), *side).with_outputs(
        "dropped", "counts", main="kept"
    )
    return outputs.kept, outputs.dropped, outputs.counts


def _first_of_groups(group, name, reason):
    """Keeps the first document of a group; the others are duplicates of it."""
    _, items = group
    items = sorted(items, key=lambda it: it.order)
    yield items[0]
    for item in items[1:]:
        yield beam.pvalue.TaggedOutput("dup", (item, items[0].doc.id))


class _Duplicates(beam.PTransform):
    """Drops duplicates within groups of documents with equal ``key`` (first kept)."""

    def __init__(self, name, reason, group_key):
        super().__init__(name)
        self.stage, self.reason, self.group_key = name, reason, group_key

    def expand(self, pcoll):
        outputs = (
            pcoll
            | "key" >> beam.Map(lambda it: (self.group_key(it), it))
            | "group" >> beam.GroupByKey()
            | "first"
            >> beam.FlatMap(_first_of_groups, self.stage, self.reason).with_outputs(
                "dup", main="kept"
            )
        )
        stage, reason = self.stage, self.reason
        dropped = outputs.dup | "record" >> beam.Map(
            lambda d: pipeline.dropped_record(d[0].doc, stage, reason, d[1])
        )
        counts = (
            (
                outputs.kept
                | "kept_counts"
                >> beam.Map(lambda it: ((stage, it.doc.language, None), it.doc.size))
            ),
            (
                outputs.dup
                | "dup_counts"
                >> beam.Map(lambda d: ((stage, d[0].doc.language, reason), d[0].doc.size))
            ),
        ) | "counts" >> beam.Flatten()
        return outputs.kept, dropped, counts


def _cluster_roots(edges):
    """order -> (root order, root id) for every document in a confirmed pair."""
    orders = sorted({o for (a, _), (b, _) in edges for o in (a, b)})
    index = {o: i for i, o in enumerate(orders)}
    ids = {o: i for pair in edges for o, i in pair}
    uf = dedup.UnionFind(len(orders))
    for (a, _), (b, _) in edges:
        uf.union(index[a], index[b])
    return {o: (orders[uf.find(index[o])], ids[orders[uf.find(index[o])]]) for o in orders}


def _near_root(item, roots):
    root = roots.get(item.order)
    return None if root is None or root[0] == item.order else root[1]


def _bucket_pairs(group, config):
    """A bucket's confirmed pairs, and its close calls as the ``close`` output."""
    _, members = group
    ids = {order: doc_id for order, doc_id, _ in members}
    confirmed, close = dedup.bucket_pairs([(order, sig) for order, _, sig in members], config)
    for a, b in confirmed:
        yield ((a, ids[a]), (b, ids[b]))
    for a, b in close:
        yield beam.pvalue.TaggedOutput("close", ((a, ids[a]), (b, ids[b])))


def _first_shingles(group, size):
    """Each close call of the first document, with that document's shingle hashes, keyed
    by the second document."""
    _, joined = group
    if joined["pair"]:
        (content,) = joined["content"]
        shingles = dedup.shingle_hashes(content, size)
        for pair in joined["pair"]:
            yield pair[1][0], (pair, shingles)


def _settle(group, config):
    """The close calls of the second document whose exact Jaccard reaches the threshold."""
    _, joined = group
    if joined["half"]:
        (content,) = joined["content"]
        shingles = dedup.shingle_hashes(content, config.shingle_size)
        for pair, first in joined["half"]:
            if dedup.exact_jaccard(first, shingles) >= config.threshold:
                yield pair


def run_beam(
    source_specs: list[str],
    out_dir: str | os.PathLike,
    config: pipeline.CorpusConfig | None = None,
    beam_options: list[str] | None = None,
) -> dict:
    """Runs the corpus pipeline on Beam; writes kept.jsonl, dropped.jsonl and report.json.

    Args:
      source_specs: as for `codeprop.corpus.pipeline.run` (read by the workers).
      out_dir: output directory (on a cluster, a path all workers can write).
      config: the stages' settings (default `CorpusConfig()`).
      beam_options: Beam pipeline flags, e.g. ``["--runner=DataflowRunner", ...]``;
        default ``["--runner=DirectRunner"]``.
    """
    config = config or pipeline.CorpusConfig()
    start = time.perf_counter()
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wanted = set(config.languages) if config.languages else None
    bands, rows = dedup.band_params(config.dedup)
    options = PipelineOptions(beam_options or ["--runner=DirectRunner"])
    with beam.Pipeline(options=options) as p:
        docs = (
            p
            | "sources" >> beam.Create(list(enumerate(source_specs)))
            | "read_sources" >> beam.FlatMap(_read, config.max_files_per_root)
        )
        dropped, counts = [], []

        def collect(result):
            dropped.append(result[1])
            counts.append(result[2])
            return result[0]

        docs = collect(_stage(docs, "read", lambda it: it.doc.error))
        docs = collect(
            _stage(docs, "language", lambda it: pipeline.language_reason(it.doc, wanted))
        )
        volume = (
            docs
            | "volume_key" >> beam.Map(lambda it: (it.doc.language, it.doc.size))
            | "volume_sum" >> beam.CombinePerKey(sum)
        )
        docs = collect(
            _stage(
                docs,
                "language_volume",
                lambda it, v: pipeline.volume_reason(it.doc, v, config.min_language_bytes),
                beam.pvalue.AsDict(volume),
            )
        )
        docs = collect(
            _stage(docs, "rules", lambda it: filters.apply(it.doc.content, config.filters))
        )
        docs = collect(
            docs
            | _Duplicates("exact_dedup", "exact_duplicate", lambda it: dedup.md5(it.doc.content))
        )
        signed = docs | "signature" >> beam.Map(
            lambda it: (it, dedup.signature(it.doc.content, config.dedup))
        )
        edges = (
            signed
            | "bands"
            >> beam.FlatMap(
                lambda s: (
                    (k, (s[0].order, s[0].doc.id, s[1])) for k in dedup.band_keys(s[1], bands, rows)
                )
            )
            | "buckets" >> beam.GroupByKey()
            | "verify"
            >> beam.FlatMap(_bucket_pairs, config.dedup).with_outputs("close", main="confirmed")
        )
        # Close calls: the exact Jaccard of the two documents' shingles, joined by order.
        contents = docs | "by_order" >> beam.Map(lambda it: (it.order, it.doc.content))
        close = edges.close | "distinct_close" >> beam.Distinct()
        first = (
            {"pair": close | "by_first" >> beam.Map(lambda p: (p[0][0], p)), "content": contents}
            | "join_first" >> beam.CoGroupByKey()
            | "first_shingles" >> beam.FlatMap(_first_shingles, config.dedup.shingle_size)
        )
        settled = (
            {"half": first, "content": contents}
            | "join_second" >> beam.CoGroupByKey()
            | "settle" >> beam.FlatMap(_settle, config.dedup)
        )
        edges = (
            (edges.confirmed, settled)
            | "edges" >> beam.Flatten()
            | "all_edges" >> beam.combiners.ToList()
            | "clusters" >> beam.Map(_cluster_roots)
        )
        near = docs | "near_root" >> beam.Map(
            lambda it, roots: (it, _near_root(it, roots)), beam.pvalue.AsSingleton(edges)
        )
        outputs = near | "near_dedup" >> beam.ParDo(_NearStage()).with_outputs(
            "dropped", "counts", main="kept"
        )
        docs = collect((outputs.kept, outputs.dropped, outputs.counts))
        docs = docs | "score" >> beam.Map(_scored, config)
        docs = collect(_stage(docs, "quality", lambda it: it.reason))
        docs = collect(_learned_quality_stage(docs, config))
        docs = collect(_perplexity_stage(docs, config))

        (
            docs
            | "kept_json"
            >> beam.Map(
                lambda it: json.dumps(pipeline.kept_record(it.doc, it.score), ensure_ascii=False)
            )
            | "write_kept"
            >> beam.io.WriteToText(
                str(out / "kept"), ".jsonl", num_shards=1, shard_name_template=""
            )
        )
        (
            tuple(dropped)
            | "all_dropped" >> beam.Flatten()
            | "dropped_json" >> beam.Map(lambda r: json.dumps(r, ensure_ascii=False))
            | "write_dropped"
            >> beam.io.WriteToText(
                str(out / "dropped"), ".jsonl", num_shards=1, shard_name_template=""
            )
        )
        ledger_counts = (
            tuple(counts)
            | "all_counts" >> beam.Flatten()
            | "count_pairs" >> beam.Map(lambda kv: (kv[0], (1, kv[1])))
            | "count_sum" >> beam.CombinePerKey(lambda xs: tuple(map(sum, zip(*xs))))
        )
        after = (
            docs
            | "after"
            >> beam.Map(lambda it: (it.doc.language, (1, accounting.count_tokens(it.doc.content))))
            | "after_sum" >> beam.CombinePerKey(lambda xs: tuple(map(sum, zip(*xs))))
        )
        (
            (
                ledger_counts
                | "tag_counts" >> beam.Map(lambda kv: json.dumps(["count", *kv[0], *kv[1]])),
                after | "tag_after" >> beam.Map(lambda kv: json.dumps(["after", kv[0], *kv[1]])),
            )
            | "all_stats" >> beam.Flatten()
            | "write_stats"
            >> beam.io.WriteToText(
                str(out / "stats"), ".jsonl", num_shards=1, shard_name_template=""
            )
        )
    return _report(source_specs, out, config, start)


@dataclasses.dataclass
class _Scored(_Doc):
    reason: str | None = None
    lq: float = 0.0
    ppl: float = float("nan")
    cut: float = float("inf")


def _scored(item, config):
    reason, score = pipeline.quality_decision(item.doc, config)
    return _Scored(item.order, item.doc, score, reason)


class _NearStage(beam.DoFn):
    def process(self, pair):
        item, root_id = pair
        reason = None if root_id is None else "near_duplicate"
        yield beam.pvalue.TaggedOutput(
            "counts", (("near_dedup", item.doc.language, reason), item.doc.size)
        )
        if reason is None:
            yield item
        else:
            record = pipeline.dropped_record(item.doc, "near_dedup", reason, root_id)
            yield beam.pvalue.TaggedOutput("dropped", record)


class _LearnedQuality(beam.DoFn):
    """Items with their expected score (``lq``), in batches; the scorer loads once per
    worker."""

    def __init__(self, path):
        self.path = path

    def setup(self):
        from codeprop.corpus import quality_model

        self.scorer = quality_model.QualityScorer.load(self.path)

    def process(self, batch):
        scores = self.scorer.score([it.doc.content for it in batch]).tolist()
        yield from (dataclasses.replace(it, lq=score) for it, score in zip(batch, scores))


def _learned_quality_stage(docs, config):
    settings = config.learned_quality
    if settings is None:
        return _stage(docs, "learned_quality", lambda it: None)
    scored = (
        docs
        | "lq_batches" >> beam.BatchElements(min_batch_size=16, max_batch_size=16)
        | "lq" >> beam.ParDo(_LearnedQuality(settings.path))
    )
    threshold = settings.threshold
    low = "learned_quality_below_threshold"
    return _stage(scored, "learned_quality", lambda it: low if it.lq < threshold else None)


class _Perplexities(beam.DoFn):
    """(item, perplexity) for batches of items; the model loads once per worker."""

    def __init__(self, settings):
        self.settings = settings

    def setup(self):
        self.scorer = perplexity_lib.Scorer(self.settings)

    def process(self, batch):
        values = self.scorer.score([it.doc.content for it in batch])
        yield from zip(batch, values.tolist())


def _perplexity_stage(docs, config):
    """The perplexity stage: a corpus-wide percentile of per-document perplexities."""
    if config.perplexity is None:
        return _stage(docs, "perplexity", lambda it: None)
    settings = config.perplexity
    scored = (
        docs
        | "ppl_batches"
        >> beam.BatchElements(
            min_batch_size=settings.batch_size, max_batch_size=settings.batch_size
        )
        | "ppl" >> beam.ParDo(_Perplexities(settings))
    )
    cut = (
        scored
        | "ppl_values" >> beam.Map(lambda pair: pair[1])
        | "ppl_list" >> beam.combiners.ToList()
        | "ppl_cut" >> beam.Map(lambda values: _cut(values, settings.percentile))
    )
    reason = f"perplexity_above_p{settings.percentile:g}"
    items = scored | "ppl_items" >> beam.Map(
        lambda pair, c: dataclasses.replace(pair[0], ppl=pair[1], cut=c),
        beam.pvalue.AsSingleton(cut),
    )
    return _stage(items, "perplexity", lambda it: None if it.ppl <= it.cut else reason)


def _cut(values, percentile):
    import numpy as np

    finite = [v for v in values if np.isfinite(v)]
    return float(np.percentile(finite, percentile)) if finite else float("-inf")


def _report(source_specs, out, config, start) -> dict:
    ledger = accounting.Ledger()
    after = {}
    for line in (out / "stats.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row[0] == "count":
            _, stage, language, reason, docs, size = row
            ledger.add(stage, language, reason, docs, size)
        else:
            after[row[1]] = {"docs": row[2], "tokens": row[3]}
    (out / "stats.jsonl").unlink()
    # Documents read per language: what entered the language stage.
    before = collections.defaultdict(accounting._zero)
    for language, entry in ledger.stages.get("language", {}).items():
        before[language]["docs"] += entry["in"]["docs"]
        before[language]["bytes"] += entry["in"]["bytes"]
    described = [{"source": spec} for spec in source_specs]
    seconds = {"total": round(time.perf_counter() - start, 3)}
    report = pipeline.make_report(described, config, ledger, dict(before), after, seconds)
    report["runner"] = "beam"
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report
