"""POJ-104 algorithm classification: 104 problems x 500 student C/C++ programs.

The archive holds ``codexglue/<problem>/<n>.cpp``; ``<problem>`` (1..104) is the POJ problem
id and the class. Texts are decoded as latin-1, as CodeXGLUE does, so ``text.encode('latin-1')``
gives back the stored bytes. Members that are not programs are counted and reported, never
silently dropped. Plain Python; the tfds builder in `codeprop.data.builders` wraps it.
"""

from __future__ import annotations

import os
import re
import tarfile

from codeprop.data import raw

NUM_CLASSES = 104
PROGRAMS_PER_CLASS = 500
_MEMBER = re.compile(r"^(?:\./)?codexglue/(\d+)/(\d+)\.cpp$")


class Poj104FormatError(raw.RawDataError):
    """The POJ-104 archive is unreadable or does not have the expected layout."""


def read_programs(raw_dir: str | os.PathLike | None = None) -> dict:
    """Reads every program of the archive.

    Args:
      raw_dir: raw-data directory (else $CODEPROP_DATA_DIR, else a mirror).

    Returns:
      ``{"examples": [...], "report": {...}}``; each example has ``id``
      (``codexglue/<problem>/<n>.cpp``), ``problem`` (1..104), ``index`` (``<n>``) and
      ``text``; examples are sorted by (problem, index). The report counts programs,
      classes and skipped members by reason.

    Raises:
      Poj104FormatError: the archive cannot be read, or a problem id is out of range.
    """
    path = raw.fetch(raw.POJ104_TAR, raw_dir)
    examples, skipped = [], {}
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isdir():
                    continue
                match = _MEMBER.match(member.name)
                if not member.isfile() or match is None:
                    reason = "not a program file (codexglue/<problem>/<n>.cpp)"
                    skipped.setdefault(reason, []).append(member.name)
                    continue
                problem, index = int(match.group(1)), int(match.group(2))
                if not 1 <= problem <= NUM_CLASSES:
                    raise Poj104FormatError(
                        f"{path}:{member.name}: problem id {problem} is outside 1..{NUM_CLASSES}"
                    )
                data = archive.extractfile(member).read()
                if not data.strip():
                    skipped.setdefault("empty program", []).append(member.name)
                    continue
                examples.append(
                    {
                        "id": member.name.removeprefix("./"),
                        "problem": problem,
                        "index": index,
                        "text": data.decode("latin-1"),
                    }
                )
    except (tarfile.TarError, OSError, EOFError) as e:
        raise Poj104FormatError(f"{path}: cannot read the archive: {e}") from e
    examples.sort(key=lambda e: (e["problem"], e["index"]))
    per_class: dict[int, int] = {}
    for e in examples:
        per_class[e["problem"]] = per_class.get(e["problem"], 0) + 1
    report = {
        "programs": len(examples),
        "classes": len(per_class),
        "min_per_class": min(per_class.values(), default=0),
        "max_per_class": max(per_class.values(), default=0),
        "skipped": {reason: len(names) for reason, names in skipped.items()},
        "skipped_examples": {reason: names[:10] for reason, names in skipped.items()},
    }
    return {"examples": examples, "report": report}
