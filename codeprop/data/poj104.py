"""POJ-104 algorithm classification: 104 problems x 500 student C/C++ programs.

The archive holds ``codexglue/<problem>/<n>.cpp``; ``<problem>`` (1..104) is the POJ problem
id and the class. Texts are decoded as latin-1, as CodeXGLUE does, so ``text.encode('latin-1')``
gives back the stored bytes. Members that are not programs are counted and reported, never
silently dropped. Plain Python; the tfds builder in `codeprop.data.builders` wraps it.

Where the archive comes from (`fetch_archive`): the raw-data directory or a mirror
(`codeprop.data.raw`, checked by its sha256), else it is rebuilt from its public source,
CodeXGLUE's three parquet files on the Hugging Face hub (`archive_from_codexglue`): the
53,000 (id, code, label) rows sorted by (id, code, label) give ``<n>``, line ends become
``\n``, and the 1,000 rows that repeat a program of their own class (classes 65 and 81
appear in two CodeXGLUE splits) are dropped, keeping the lowest ``<n>``. The result must
have `CONTENT_SHA256`, the `content_digest` of the archive codeprop's sha256 pins, so a
rebuilt archive holds the same programs under the same names, and the same splits follow.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pathlib
import re
import tarfile
from collections.abc import Iterable, Sequence

from codeprop.data import raw

NUM_CLASSES = 104
PROGRAMS_PER_CLASS = 500
_MEMBER = re.compile(r"^(?:\./)?codexglue/(\d+)/(\d+)\.cpp$")


CODEXGLUE_URL = (
    "https://huggingface.co/datasets/google/code_x_glue_cc_clone_detection_poj104/resolve/main/data"
)
CODEXGLUE_PARQUET = tuple(
    raw.RawFile(
        f"poj104/codexglue/{split}-00000-of-00001.parquet",
        None,  # The hub publishes no checksum: the rebuilt archive's content is checked.
        f"{CODEXGLUE_URL}/{split}-00000-of-00001.parquet",
    )
    for split in ("train", "validation", "test")
)
# `content_digest` of the 52,000 programs of raw.POJ104_TAR (sha256 b2994e27...).
CONTENT_SHA256 = "393e92fb2ba233da2fb34f418f28545273881c3deacd3d6b5a2c05ba6e0923fc"
REBUILT = "poj104/poj104_programs.codexglue.tar.gz"


class Poj104FormatError(raw.RawDataError):
    """The POJ-104 archive is unreadable or does not have the expected layout."""


def content_digest(members: Iterable[tuple[str, bytes]]) -> str:
    """sha256 over ``<path>\t<sha256 of the bytes>\n`` of every program, paths sorted: the
    same for two archives that hold the same programs under the same names, however they
    were packed."""
    lines = sorted(f"{name}\t{hashlib.sha256(data).hexdigest()}\n" for name, data in members)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _programs(path: pathlib.Path) -> Iterable[tuple[str, bytes]]:
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile() and _MEMBER.match(member.name):
                yield member.name.removeprefix("./"), archive.extractfile(member).read()


def archive_from_codexglue(parquet_files: Sequence[str | os.PathLike], out: str | os.PathLike):
    """Rebuilds the POJ-104 archive from CodeXGLUE's parquet files (columns ``id``,
    ``code``, ``label``) and checks it against `CONTENT_SHA256` before writing `out`.

    Returns:
      (path written, report: rows read, within-class repeats dropped, programs kept).

    Raises:
      Poj104FormatError: a file is unreadable or lacks a column, or the programs are not
        the ones codeprop pins (the source changed or a download is corrupt).
    """
    import pyarrow.parquet as pq

    rows = set()
    for path in parquet_files:
        try:
            table = pq.read_table(path, columns=["id", "code", "label"]).to_pydict()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types; name the file
            raise Poj104FormatError(f"{path}: not a CodeXGLUE POJ-104 parquet file: {e}") from e
        rows.update(zip(table["id"], table["code"], table["label"], strict=True))
    members, seen = [], set()
    for n, (_, code, label) in enumerate(sorted(rows)):
        text = code.replace("\r\n", "\n").replace("\r", "\n")
        if (label, text) in seen:  # The same program again in its class: keep the first.
            continue
        seen.add((label, text))
        members.append((f"codexglue/{label}/{n}.cpp", text.encode("utf-8")))
    digest = content_digest(members)
    if digest != CONTENT_SHA256:
        raise Poj104FormatError(
            f"{', '.join(map(str, parquet_files))}: {len(members)} programs rebuilt from "
            f"{len(rows)} rows, content sha256 {digest}, not the {CONTENT_SHA256} of the "
            "archive codeprop pins: the source changed or a download is corrupt"
        )
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in sorted(members):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    tmp = out.with_suffix(".partial")
    tmp.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    os.replace(tmp, out)
    report = {"rows": len(rows), "repeats_dropped": len(rows) - len(members)}
    return out, report | {"programs": len(members)}


def fetch_archive(raw_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """The archive: local or mirrored (sha256-checked), else rebuilt from CodeXGLUE's
    parquet files into the cache (content-checked) on first use."""
    try:
        return raw.fetch(raw.POJ104_TAR, raw_dir)
    except (raw.RawFileMissing, raw.RawDownloadError):
        pass  # Not to be had as it is: rebuild it. A checksum mismatch still raises.
    rebuilt = raw.cache_dir() / REBUILT
    if rebuilt.is_file():
        digest = content_digest(_programs(rebuilt))
        if digest == CONTENT_SHA256:
            return rebuilt
        rebuilt.unlink()  # A damaged cache: rebuild it.
    parquet_files = [raw.fetch(f, raw_dir) for f in CODEXGLUE_PARQUET]
    path, _ = archive_from_codexglue(parquet_files, rebuilt)
    return path


def read_programs(raw_dir: str | os.PathLike | None = None) -> dict:
    """Reads every program of the archive.

    Args:
      raw_dir: raw-data directory (else $CODEPROP_DATA_DIR, else a mirror, else the
        archive rebuilt from CodeXGLUE, see `fetch_archive`).

    Returns:
      ``{"examples": [...], "report": {...}}``; each example has ``id``
      (``codexglue/<problem>/<n>.cpp``), ``problem`` (1..104), ``index`` (``<n>``) and
      ``text``; examples are sorted by (problem, index). The report counts programs,
      classes and skipped members by reason.

    Raises:
      Poj104FormatError: the archive cannot be read, or a problem id is out of range.
    """
    path = fetch_archive(raw_dir)
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
