"""What each pipeline stage took in, kept and dropped (and why), per language.

A `Ledger` is filled by the stages (`record` once per document per stage it reaches) and
summarised into the report: per stage and language the documents and bytes in, kept and
dropped by reason, and a table like the CodeShell report's Table 1 (per language: files
and size before, files and tokens after, and their shares).
"""

from __future__ import annotations

import collections
import re

_TOKENS = re.compile(r"\w+|[^\w\s]")


def count_tokens(content: str) -> int:
    """Word and punctuation tokens (the report's token column before a tokenizer exists)."""
    return len(_TOKENS.findall(content))


def _zero():
    return {"docs": 0, "bytes": 0}


class Ledger:
    """Per stage, per language: documents and bytes in, kept, dropped by reason."""

    def __init__(self):
        self.stages: dict[str, dict] = {}

    def record(self, stage: str, language: str, size: int, reason: str | None) -> None:
        """One document at one stage: kept (reason None) or dropped for ``reason``."""
        self.add(stage, language, reason, 1, size)

    def add(self, stage: str, language: str, reason: str | None, docs: int, size: int) -> None:
        """``docs`` documents of ``size`` bytes in all (counts aggregated elsewhere)."""
        per_language = self.stages.setdefault(stage, {})
        entry = per_language.setdefault(
            language, {"in": _zero(), "kept": _zero(), "dropped": collections.defaultdict(_zero)}
        )
        for bucket in (entry["in"], entry["kept"] if reason is None else entry["dropped"][reason]):
            bucket["docs"] += docs
            bucket["bytes"] += size

    def summary(self, stages: tuple[str, ...] = ()) -> dict:
        """Per stage (``stages`` first, in order, even those no document reached; then any
        other recorded stage): totals and per language, as plain dicts (JSON-ready)."""
        out = {}
        names = list(stages) + [s for s in self.stages if s not in stages]
        for stage in names:
            per_language = self.stages.get(stage, {})
            total = {"in": _zero(), "kept": _zero(), "dropped": collections.defaultdict(_zero)}
            languages = {}
            for language, entry in sorted(per_language.items()):
                dropped = {r: dict(v) for r, v in sorted(entry["dropped"].items())}
                languages[language] = {
                    "in": dict(entry["in"]),
                    "kept": dict(entry["kept"]),
                    "dropped": dropped,
                }
                for key in ("in", "kept"):
                    for field in ("docs", "bytes"):
                        total[key][field] += entry[key][field]
                for reason, value in dropped.items():
                    for field in ("docs", "bytes"):
                        total["dropped"][reason][field] += value[field]
            total["dropped"] = {r: dict(v) for r, v in sorted(total["dropped"].items())}
            out[stage] = {"total": total, "languages": languages}
        return out


def language_table(before: dict[str, dict], after: dict[str, dict]) -> list[dict]:
    """Table 1: per language, files and MB before; files and tokens after; shares (%).

    Args:
      before: language -> {"docs", "bytes"} of the documents read.
      after: language -> {"docs", "tokens"} of the documents kept.
    """
    total_bytes = sum(v["bytes"] for v in before.values()) or 1
    total_tokens = sum(v["tokens"] for v in after.values()) or 1
    rows = []
    for language in sorted(before, key=lambda k: -before[k]["bytes"]):
        kept = after.get(language, {"docs": 0, "tokens": 0})
        rows.append(
            {
                "language": language,
                "files_before": before[language]["docs"],
                "size_mb_before": round(before[language]["bytes"] / 2**20, 3),
                "share_before_pct": round(100 * before[language]["bytes"] / total_bytes, 2),
                "files_after": kept["docs"],
                "tokens_after": kept["tokens"],
                "share_after_pct": round(100 * kept["tokens"] / total_tokens, 2),
            }
        )
    return rows
