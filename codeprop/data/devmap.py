"""Heterogeneous device mapping (devmap): read the CGO'17 CSVs, kernels and NCC IR.

Each platform CSV (``cgo17-amd.csv``, ``cgo17-nvidia.csv``) has 680 rows: one OpenCL kernel
run on one input size. The label is GPU (1) iff ``runtime_gpu < runtime_cpu``, which must
agree with the CSV's ``oracle`` column. The LLVM IR of each row is the NCC IR that ProGraML
used, resolved with ProGraML's rule (``<benchmark>-<dataset>``, then ``<benchmark>``, then
``<benchmark>_<dataset>``). This module is plain Python (no TensorFlow); the tfds builder in
`codeprop.data.builders` wraps it.
"""

from __future__ import annotations

import csv
import io
import math
import os
import pathlib
import zipfile
from collections.abc import Iterable

import numpy as np

from codeprop.data import raw

PLATFORMS = ("amd", "nvidia")
CPU, GPU = 0, 1
STATIC_FEATURES = ("comp", "rational", "mem", "localmem", "coalesced", "atomic")
_INT_COLUMNS = (*STATIC_FEATURES, "transfer", "wgsize")
_FLOAT_COLUMNS = ("runtime_cpu", "runtime_gpu")
_COLUMNS = ("", "benchmark", "dataset", *_INT_COLUMNS, "oracle", *_FLOAT_COLUMNS, "src", "seq")
_SUITES = {
    "amd-app-sdk": "AMD SDK",
    "npb": "NPB",
    "nvidia": "NVIDIA SDK",
    "parboil": "Parboil",
    "polybench": "PolyBench",
    "rodinia": "Rodinia",
    "shoc": "SHOC",
}


class DevmapFormatError(raw.RawDataError):
    """A devmap CSV or archive does not have the expected layout."""


def suite_of(benchmark: str) -> str:
    """Benchmark suite from a `benchmark` name such as ``npb-3.3-BT-add`` -> ``NPB``."""
    for prefix, suite in _SUITES.items():
        if benchmark.startswith(prefix + "-"):
            return suite
    return "unknown"


def ncc_name(benchmark: str, dataset: str, available: set[str], ext: str) -> str | None:
    """ProGraML's `name2ncc_path` rule: the NCC file name for a row, or None if absent."""
    for stem in (f"{benchmark}-{dataset}", benchmark, f"{benchmark}_{dataset}"):
        if stem + ext in available:
            return stem + ext
    return None


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Reads one platform CSV into typed rows.

    Returns:
      One dict per row, in file order: ``row`` (int), ``benchmark``, ``dataset``,
      ``suite``, the six static features, ``transfer``, ``wgsize`` (ints), ``runtime_cpu``,
      ``runtime_gpu`` (floats), ``normalized_source`` (the ``src`` column) and ``label``
      (1 = GPU).

    Raises:
      DevmapFormatError: wrong header, a malformed row (naming file and line), or a label
        that disagrees with the ``oracle`` column.
    """
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DevmapFormatError(f"{path}: cannot read as UTF-8 text: {e}") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or tuple(header) != _COLUMNS:
        raise DevmapFormatError(f"{path}: header {header!r} is not the CGO'17 layout {_COLUMNS}")
    rows = []
    while True:
        line = reader.line_num + 1  # Where this record starts (``src`` spans many lines).
        values = next(reader, None)
        if values is None:
            break
        where = f"{path}:{line}"
        if len(values) != len(_COLUMNS):
            raise DevmapFormatError(f"{where}: {len(values)} fields, expected {len(_COLUMNS)}")
        record = dict(zip(_COLUMNS, values, strict=True))
        try:
            row = {
                "row": int(record[""]),
                "benchmark": record["benchmark"],
                "dataset": record["dataset"],
                "suite": suite_of(record["benchmark"]),
                **{k: int(record[k]) for k in _INT_COLUMNS},
                **{k: float(record[k]) for k in _FLOAT_COLUMNS},
                "normalized_source": record["src"],
            }
        except ValueError as e:
            raise DevmapFormatError(f"{where}: malformed value: {e}") from e
        if not all(math.isfinite(row[k]) and row[k] > 0 for k in _FLOAT_COLUMNS):
            raise DevmapFormatError(f"{where}: runtimes must be positive and finite")
        if record["oracle"] not in ("CPU", "GPU"):
            raise DevmapFormatError(f"{where}: oracle {record['oracle']!r} is not CPU or GPU")
        row["label"] = GPU if row["runtime_gpu"] < row["runtime_cpu"] else CPU
        if (row["label"] == GPU) != (record["oracle"] == "GPU"):
            raise DevmapFormatError(
                f"{where}: runtimes say {'GPU' if row['label'] else 'CPU'} is faster but the "
                f"oracle column says {record['oracle']}"
            )
        rows.append(row)
    if [r["row"] for r in rows] != list(range(len(rows))):
        raise DevmapFormatError(f"{path}: row index column is not 0..{len(rows) - 1}")
    return rows


def decode_source(data: bytes) -> tuple[str, bool]:
    """UTF-8 text, or latin-1 (lossless: one code point per byte) when the bytes are not
    UTF-8, as in six AMD SDK kernels whose licence header has a latin-1 copyright sign.

    Returns:
      (text, True if latin-1 was used).
    """
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), True


def _zip_members(archive: zipfile.ZipFile, folder: str) -> dict[str, str]:
    """Base name -> member name for the files directly inside `folder/` of a zip."""
    members = {}
    for name in archive.namelist():
        if name.startswith(folder + "/") and not name.endswith("/") and "__MACOSX" not in name:
            members[name[len(folder) + 1 :]] = name
    return members


def read_ir(ir_files: Iterable[str], raw_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """IR texts of `ir_files` (``kernels_ir/<name>.ll``, as examples' ``ir_file``) from the
    NCC zip.

    Raises:
      DevmapFormatError: the zip is unreadable or lacks a file.
    """
    zip_path = raw.fetch(raw.DEVMAP_NCC_ZIP, raw_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise DevmapFormatError(f"{zip_path}: not a readable zip archive: {e}") from e
    texts = {}
    with archive:
        available = set(archive.namelist())
        for name in ir_files:
            if name not in available:
                raise DevmapFormatError(f"{zip_path}: no member {name}")
            texts[name] = decode_source(archive.read(name))[0]
    return texts


def read_platform(platform: str, raw_dir: str | os.PathLike | None = None) -> dict:
    """Reads all 680 devmap examples of one platform, with kernel sources and IR.

    Args:
      platform: ``amd`` or ``nvidia``.
      raw_dir: raw-data directory (else $CODEPROP_DATA_DIR, else download).

    Returns:
      ``{"examples": [...], "report": {...}}``. Each example is a `read_csv` row plus
      ``source`` (original OpenCL from ``kernels_cl/``, "" when no original is available;
      see `decode_source`),
      ``source_file``, ``ir_file`` (``kernels_ir/<name>.ll``) and ``ir`` (IR text).
      The report counts rows, labels, rows without an original source and files that were
      not UTF-8.

    Raises:
      DevmapFormatError: unknown platform, or a row whose IR file is missing from the zip.
    """
    if platform not in PLATFORMS:
        raise DevmapFormatError(
            f"unknown devmap platform {platform!r}; expected one of {PLATFORMS}"
        )
    csv_file = raw.DEVMAP_AMD_CSV if platform == "amd" else raw.DEVMAP_NVIDIA_CSV
    rows = read_csv(raw.fetch(csv_file, raw_dir))
    zip_path = raw.fetch(raw.DEVMAP_NCC_ZIP, raw_dir)
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as e:
        raise DevmapFormatError(f"{zip_path}: not a readable zip archive: {e}") from e
    with archive:
        ir_members = _zip_members(archive, "kernels_ir")
        cl_dir = raw.local_path("devmap/kernels_cl", raw_dir)
        if cl_dir is not None:
            cl_available = {p.name for p in cl_dir.iterdir() if p.is_file()}
            cl_origin = str(cl_dir)

            def read_cl(name: str) -> bytes:
                return (cl_dir / name).read_bytes()
        else:  # The zip's own, older kernels_cl/ misses a few files: counted below.
            cl_zip = _zip_members(archive, "kernels_cl")
            cl_available = set(cl_zip)
            cl_origin = f"{zip_path}:kernels_cl/"

            def read_cl(name: str) -> bytes:
                return archive.read(cl_zip[name])

        ir_available = set(ir_members)
        examples, missing_source, latin1 = [], [], set()
        for row in rows:
            ir_name = ncc_name(row["benchmark"], row["dataset"], ir_available, ".ll")
            if ir_name is None:
                raise DevmapFormatError(
                    f"{zip_path}: no kernels_ir/ file for row {row['row']} "
                    f"({row['benchmark']}, {row['dataset']})"
                )
            cl_name = ncc_name(row["benchmark"], row["dataset"], cl_available, ".cl")
            source, fell_back = decode_source(read_cl(cl_name)) if cl_name else ("", False)
            if fell_back:
                latin1.add(f"kernels_cl/{cl_name}")
            if not cl_name:
                missing_source.append(row["benchmark"])
            ir, ir_fell_back = decode_source(archive.read(ir_members[ir_name]))
            if ir_fell_back:
                latin1.add(f"kernels_ir/{ir_name}")
            examples.append(
                {
                    **row,
                    "source": source,
                    "source_file": f"kernels_cl/{cl_name}" if cl_name else "",
                    "ir_file": f"kernels_ir/{ir_name}",
                    "ir": ir,
                }
            )
    report = {
        "platform": platform,
        "rows": len(examples),
        "gpu": sum(e["label"] for e in examples),
        "cpu": sum(1 - e["label"] for e in examples),
        "original_source_from": cl_origin,
        "rows_without_original_source": len(missing_source),
        "benchmarks_without_original_source": sorted(set(missing_source)),
        "files_not_utf8_decoded_as_latin1": sorted(latin1),
    }
    return {"examples": examples, "report": report}


def static_mapping_label(platform: str) -> int:
    """The static mapping the literature compares with: always CPU on AMD, GPU on NVIDIA."""
    return CPU if platform == "amd" else GPU


def speedup_over_static(
    predictions: Iterable[int], examples: Iterable[dict], platform: str
) -> dict[str, float]:
    """Speedup of the predicted device over the static mapping, per example then averaged.

    Per example the speedup is ``runtime(static device) / runtime(predicted device)``; the
    arithmetic mean is what DeepTune and ProGraML report, the geometric mean is also given.
    """
    static = static_mapping_label(platform)
    ratios = []
    for pred, ex in zip(predictions, examples, strict=True):
        runtimes = (ex["runtime_cpu"], ex["runtime_gpu"])
        ratios.append(runtimes[static] / runtimes[int(pred)])
    if not ratios:
        return {"speedup_mean": float("nan"), "speedup_geomean": float("nan")}
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    return {"speedup_mean": sum(ratios) / len(ratios), "speedup_geomean": geo}


GREWE_FEATURES = (
    "transfer/(comp+mem)",
    "coalesced/mem",
    "localmem/mem*wgsize",
    "comp/mem",
)
"""Grewe et al.'s (CGO 2013) four combined features, as DeepTune's paper lists them."""


def static_features(examples: Iterable[dict]) -> np.ndarray:
    """[N, 10] each row's six static counts (`STATIC_FEATURES`, counted on the kernel's
    code by the CSV's authors) and Grewe et al.'s four ratios of them (`GREWE_FEATURES`,
    with the row's transfer and work-group size), float64. ``mem`` is at least 1 in both
    CSVs; a row with ``mem == 0`` raises ValueError naming it."""
    rows = []
    for ex in examples:
        comp, mem = ex["comp"], ex["mem"]
        if mem <= 0:
            raise ValueError(f"devmap row {ex.get('row')} ({ex['benchmark']}): mem = {mem}")
        rows.append(
            [ex[f] for f in STATIC_FEATURES]
            + [
                ex["transfer"] / (comp + mem),
                ex["coalesced"] / mem,
                ex["localmem"] / mem * ex["wgsize"],
                comp / mem,
            ]
        )
    return np.array(rows, np.float64).reshape(-1, len(STATIC_FEATURES) + len(GREWE_FEATURES))
