"""Where pretraining code comes from: directories and globs, JSONL dumps, tfds datasets.

Every input becomes a `Document` — also the ones that cannot be read (binary files, bad
JSON lines), which carry ``error`` so that the pipeline drops them with a reason instead of
losing them. Source specs (the ``--source`` values of ``python -m codeprop.corpus``):

- a directory (read recursively) or a glob: one document per file, language from the
  file extension (`LANGUAGES`); files with an unknown extension are documents with
  language ``unknown``;
- ``*.jsonl`` / ``*.jsonl.gz``: one document per line in The Stack's layout (``content``,
  ``path`` or ``max_stars_repo_path``, ``lang``);
- ``tfds:NAME:SPLIT[:FIELD[:LANGUAGE]]``: a tfds dataset's text field (default
  ``content``), e.g. ``tfds:poj104:full:text:cpp``;
- ``default``: `default_corpus`, code found on any machine with codeprop installed;
- ``poj104-train[:PROTOCOLS[:SEEDS]]``: the POJ-104 programs that are training programs
  in every listed probe split (`poj104_training`; default ``per_class_3_1_1,holdout``
  and the probes' split seed ``204``), so a model pretrained on them has seen no
  program that a probe validates or tests on.
"""

from __future__ import annotations

import dataclasses
import errno
import glob
import gzip
import json
import os
import stat
import sys
import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".cxx": "cpp",
    ".hh": "cpp",
    ".hpp": "cpp",
    ".hxx": "cpp",
    ".cl": "opencl",
    ".java": "java",
    ".js": "javascript",
    ".mjs": "javascript",
    ".ts": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".rb": "ruby",
    ".php": "php",
    ".cs": "c-sharp",
    ".scala": "scala",
    ".kt": "kotlin",
    ".swift": "swift",
    ".lua": "lua",
    ".jl": "julia",
    ".r": "r",
    ".pl": "perl",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".md": "markdown",
    ".rst": "restructuredtext",
    ".html": "html",
    ".css": "css",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".tex": "tex",
    ".f90": "fortran",
    ".hs": "haskell",
    ".ml": "ocaml",
    ".d": "d",
}
NUL = b"\0"
MAX_READ_BYTES = 10 * 2**20  # Larger files are not read (dropped as too large).


@dataclasses.dataclass
class Document:
    """One input document.

    Attributes:
      id: unique and stable across runs (source spec + path, or + line number).
      path: the file (or the path recorded in a JSONL line).
      language: from the extension or the JSONL ``lang`` field; ``unknown`` otherwise.
      content: the text, or None when it could not be read.
      error: why it could not be read, or None.
      size: bytes of the content (of the file, when unread).
    """

    id: str
    path: str
    language: str
    content: str | None
    error: str | None = None
    size: int = 0

    def __post_init__(self):
        if self.content is not None and not self.size:
            self.size = len(self.content.encode("utf-8", errors="surrogatepass"))


def language_of(path: str) -> str:
    return LANGUAGES.get(os.path.splitext(path)[1].lower(), "unknown")


def text_problem(data: bytes) -> str | None:
    """Why bytes are not a text document (NUL bytes, not UTF-8), or None: the same rule
    for every source format. Reasons are categories (the ledger counts by reason)."""
    if NUL in data:
        return "binary (NUL bytes)"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def _document(doc_id: str, path: str, language: str, data: bytes) -> Document:
    """A document of `data`, or an unreadable one when `text_problem` says so."""
    problem = text_problem(data)
    if problem:
        return Document(doc_id, path, language, None, problem, len(data))
    return Document(doc_id, path, language, data.decode("utf-8"), size=len(data))


def printable_name(text: str) -> str:
    """A file name as text that JSON and UTF-8 can carry: the bytes of a name that are
    not UTF-8 (which Python holds as lone surrogates) as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_file(path: Path, doc_id: str) -> Document:
    name = printable_name(str(path))
    try:
        size = path.stat().st_size
        if size > MAX_READ_BYTES:
            return Document(doc_id, name, language_of(name), None, "file over 10 MiB", size)
        data = path.read_bytes()
    except OSError as error:
        return Document(doc_id, name, language_of(name), None, f"unreadable: {error.strerror}")
    return _document(doc_id, name, language_of(name), data)


def read_files(spec: str, paths: list[Path], root: Path | None = None) -> Iterator[Document]:
    """Documents of ``paths`` (sorted), ids ``spec:relative path``."""
    for path in sorted(paths):
        relative = path.relative_to(root) if root else path
        yield _read_file(path, printable_name(f"{spec}:{relative}"))


SPECIAL = {
    stat.S_IFIFO: "fifo",
    stat.S_IFSOCK: "socket",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
}


def walk(root: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every entry under the directory `root`: (the regular files, sorted; every other
    entry that is not a directory walked, with the reason it gives no document).

    Symlinks are followed, to files and directories; a directory reached a second time
    (a symlink loop, or a link to a directory already walked) is reported, not walked
    again. Reported: unreadable directories, dangling symlinks, symlink loops, and
    special files (fifos, sockets, devices: never opened).
    """
    files, problems, walked = [], [], set()

    def visit(directory: Path) -> None:
        try:
            info = directory.stat()
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as error:
            problems.append((directory, f"unreadable directory: {error.strerror}"))
            return
        if (info.st_dev, info.st_ino) in walked:
            problems.append((directory, "a directory already walked (symlink loop or alias)"))
            return
        walked.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = Path(entry.path)
            try:
                mode = os.stat(path).st_mode  # follows symlinks
            except OSError as error:
                if error.errno == errno.ELOOP:
                    problems.append((path, "symlink loop"))
                elif entry.is_symlink():
                    problems.append((path, "dangling symlink"))
                else:
                    problems.append((path, f"unreadable: {error.strerror}"))
                continue
            if stat.S_ISDIR(mode):
                visit(path)
            elif stat.S_ISREG(mode):
                files.append(path)
            else:
                problems.append((path, f"special file ({SPECIAL.get(stat.S_IFMT(mode), 'other')})"))

    visit(root)
    return sorted(files), problems


def problem_documents(spec: str, root: Path, problems: list[tuple[Path, str]]) -> list[Document]:
    """An unreadable document, with its reason, for each entry `walk` reported."""
    documents = []
    for path, reason in problems:
        name, relative = str(path), path.relative_to(root) if path != root else Path(".")
        doc_id, name = printable_name(f"{spec}:{relative}"), printable_name(name)
        documents.append(Document(doc_id, name, language_of(name), None, reason))
    return documents


def read_directory(spec: str, root: Path) -> list[Document]:
    """Documents of every file under `root` (`walk`), then an unreadable document for
    every other entry the walk met (`problem_documents`)."""
    files, problems = walk(root)
    return [*read_files(spec, files, root), *problem_documents(spec, root, problems)]


def read_jsonl(path: Path) -> Iterator[Document]:
    """Documents of a JSONL file in The Stack's layout; bad lines are unreadable
    documents, and so is a line or a content that is not text (`text_problem`: invalid
    UTF-8 or a NUL byte, as for a file of a directory; a JSON escape such as ``\\udc80``
    that encodes no character counts as invalid UTF-8)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            doc_id = f"{path}:{number}"
            try:
                record = json.loads(raw.decode("utf-8"))
                content = record["content"]
                if not isinstance(content, str):
                    raise TypeError("content is not a string")
            except UnicodeDecodeError:
                yield Document(doc_id, str(path), "unknown", None, "bad JSONL line: not UTF-8",
                               len(raw))  # fmt: skip
                continue
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                reason = f"bad JSONL line: {type(error).__name__}: {error}"
                yield Document(doc_id, str(path), "unknown", None, reason[:200], len(raw))
                continue
            doc_path = record.get("path") or record.get("max_stars_repo_path") or ""
            language = (record.get("lang") or record.get("language") or "").lower()
            language = language or language_of(doc_path)
            data = content.encode("utf-8", errors="surrogatepass")
            yield _document(doc_id, doc_path, language, data)


def read_tfds(
    name: str, split: str, field: str = "content", language: str = "", data_dir=None
) -> Iterator[Document]:
    """Documents of a tfds dataset's text ``field`` (e.g. ``tfds:poj104:full:text:cpp``);
    the language is ``language``, else the example's ``lang`` feature, else unknown."""
    import tensorflow_datasets as tfds

    from codeprop.data import builders  # noqa: F401  (registers codeprop's datasets)

    data_dir = data_dir or os.environ.get("CODEPROP_TFDS_DIR")
    dataset = tfds.load(name, split=split, data_dir=data_dir)
    for number, example in enumerate(tfds.as_numpy(dataset)):
        value = example[field]
        data = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")
        lang = language or example.get("lang", b"")
        lang = lang.decode(errors="replace") if isinstance(lang, bytes) else str(lang or "")
        doc_id, path = f"tfds:{name}:{split}:{number}", f"{name}/{split}/{number}"
        yield _document(doc_id, path, lang or "unknown", data)


def default_roots() -> list[tuple[str, Path]]:
    """(name, directory) of the default corpus: Python's standard library, Python's C
    headers and the system's C headers, and the sources of a few installed pure-Python
    packages (where they exist on this machine)."""
    roots = [
        ("python-stdlib", Path(sysconfig.get_paths()["stdlib"])),
        ("python-include", Path(sysconfig.get_paths()["include"])),
        ("usr-include", Path("/usr/include")),
    ]
    for module in ("absl", "gin", "flax", "optax", "jraph", "clu"):
        loaded = sys.modules.get(module)
        try:
            if loaded is None:
                loaded = __import__(module)
            roots.append((f"site-packages/{module}", Path(loaded.__file__).parent))
        except (ImportError, AttributeError, TypeError):
            continue
    return [(name, path) for name, path in roots if path.is_dir()]


def default_corpus(max_files_per_root: int | None = None) -> tuple[list[Document], list[dict]]:
    """The default corpus: code files (by `LANGUAGES`, prose and data formats excluded)
    under `default_roots`; returns (documents, the roots listed with their file counts)."""
    code = {ext for ext, lang in LANGUAGES.items() if lang in ("python", "c", "cpp")}
    documents, listing = [], []
    for name, root in default_roots():
        skip = {"__pycache__", "site-packages", "dist-packages"}  # stdlib only, not add-ons
        files, problems = walk(root)
        files = [
            p for p in files
            if p.suffix in code and not skip.intersection(p.relative_to(root).parts)
        ]  # fmt: skip
        if max_files_per_root is not None:
            files = files[:max_files_per_root]
        documents.extend(read_files(f"default/{name}", files, root))
        # What the walk met that would have been code (or held some): reported, unless
        # the corpus is capped (then the cap decides, not the walk).
        if max_files_per_root is None:
            problems = [
                (path, reason) for path, reason in problems
                if path.suffix in code or reason.startswith(("unreadable directory", "a dir"))
            ]  # fmt: skip
            documents.extend(problem_documents(f"default/{name}", root, problems))
        listing.append({"name": name, "path": str(root), "files": len(files)})
    return documents, listing


POJ104_PROTOCOLS = ("per_class_3_1_1", "holdout")


def poj104_training(
    protocols: tuple[str, ...] = POJ104_PROTOCOLS,
    seeds: tuple[int, ...] = (204,),
    raw_dir=None,
    tfds_dir=None,
) -> tuple[list[Document], dict]:
    """POJ-104 programs in the training part of every (protocol, seed) split.

    A program that any of those splits validates or tests on is left out (and counted):
    the probes' splits are made from the same labels in the same order
    (`codeprop.data.splits.of_protocol`; the probes' seed is `splits.PROBE_SEED`).
    ``kfold`` holds every program out once, so it is refused.

    Returns:
      (documents, description): one ``cpp`` document per program, id
      ``poj104-train:<problem>/<index>``; the description counts the programs, the ones
      held out and the splits they were checked against.
    """
    from codeprop.data import benchmarks, splits

    if "kfold" in protocols:
        raise ValueError("poj104-train: kfold holds out every program once; no program is left")
    bench = benchmarks.load("poj104", raw_dir=raw_dir, tfds_dir=tfds_dir)
    keep = np.ones(len(bench.examples), bool)
    for protocol in protocols:
        for seed in seeds:
            for split in splits.of_protocol(bench.labels, protocol, seed=seed):
                keep[split["validation"]] = False
                keep[split["test"]] = False
    documents = [
        Document(
            f"poj104-train:{e['problem']}/{e['index']}",
            f"poj104/{e['problem']}/{e['index']}.cpp",
            "cpp",
            e["text"],
        )
        for e, kept in zip(bench.examples, keep, strict=True)
        if kept
    ]
    description = {
        "programs": len(bench.examples),
        "training_programs": len(documents),
        "held_out_programs": int((~keep).sum()),
        "splits": {"protocols": list(protocols), "seeds": list(seeds)},
    }
    return documents, description


def read(spec: str, max_files_per_root: int | None = None) -> tuple[list[Document], dict]:
    """The documents of one source spec and a description of the source."""
    if spec == "poj104-train" or spec.startswith("poj104-train:"):
        parts = spec.split(":")[1:]
        if len(parts) > 2:
            raise ValueError(f"{spec}: expected poj104-train[:PROTOCOLS[:SEEDS]]")
        protocols = tuple(parts[0].split(",")) if parts and parts[0] else POJ104_PROTOCOLS
        try:
            seeds = tuple(int(x) for x in parts[1].split(",")) if len(parts) > 1 else (204,)
        except ValueError:
            raise ValueError(f"{spec}: SEEDS must be integers separated by commas") from None
        documents, description = poj104_training(protocols, seeds)
        return documents, {"source": spec, **description}
    if spec == "default":
        documents, roots = default_corpus(max_files_per_root)
        return documents, {"source": spec, "roots": roots}
    if spec.startswith("tfds:"):
        parts = spec.split(":")
        if len(parts) not in (3, 4, 5):
            raise ValueError(f"{spec}: expected tfds:NAME:SPLIT[:FIELD[:LANGUAGE]]")
        documents = list(read_tfds(*parts[1:]))
        return documents, {"source": spec}
    path = Path(spec)
    if path.is_file() and (spec.endswith(".jsonl") or spec.endswith(".jsonl.gz")):
        return list(read_jsonl(path)), {"source": spec}
    if path.is_dir():
        return read_directory(spec, path), {"source": spec}
    if path.is_file():
        return list(read_files(spec, [path], path.parent)), {"source": spec}
    matches = [Path(p) for p in glob.glob(spec, recursive=True) if os.path.isfile(p)]
    if not matches:
        raise FileNotFoundError(f"{spec}: no such file, directory or glob match")
    return list(read_files(spec, matches)), {"source": spec}
