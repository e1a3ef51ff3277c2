"""C, C++ and OpenCL C -> textual LLVM IR with clang 22 (the PyPI ``ziglang`` wheel).

The toolchain comes with the project's own set-up: ``ziglang`` carries clang 22 (matching
llvmlite 0.50's LLVM) with libc++ and glibc headers, so no system compiler is needed.
Compilation calls clang's ``-cc1`` front end directly with the arguments that ``zig c++``
would use (read once from ``zig c++ -###``), which skips zig's driver and build cache, and
includes a precompiled prelude header (standard includes; built once per cache directory).

Every compilation runs in a subprocess with a wall-clock timeout and an address-space
limit; its outcome (IR, or the reason it failed) is cached by a hash of everything that
determines it (source, language, flags, prelude, compiler version). `compile_many` runs
compilations in parallel.

POJ-104 programs (whose includes were stripped) need fix-ups to compile; `poj104_attempts`
lists them in the order to try: ``main`` returning int, a standard-include prelude
(C headers, plus the C++ library when the program uses it), ``-std=c++98`` (which still
has ``gets``), the C++ prelude without ``using namespace std`` (for programs whose globals
clash with std names such as ``max``), and finally the program as GNU89 C.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import pathlib
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

LANGUAGES = ("c", "cpp", "opencl")
CACHE_FORMAT = 1  # Bump when how a source is compiled changes in a way flags do not show.
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_MEMORY_MB = 2048

C_PRELUDE = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <ctype.h>
#include <limits.h>
#include <float.h>
#include <time.h>
#include <stdarg.h>
#include <assert.h>
"""
CPP_HEADERS = """\
#include <iostream>
#include <iomanip>
#include <fstream>
#include <sstream>
#include <string>
#include <algorithm>
#include <vector>
#include <list>
#include <map>
#include <set>
#include <queue>
#include <stack>
#include <deque>
#include <utility>
#include <functional>
#include <numeric>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
"""
# Names a program can use unqualified when it does not import all of std.
_STD_NAMES = [
    "cin",
    "cout",
    "cerr",
    "endl",
    "ios",
    "string",
    "vector",
    "list",
    "map",
    "set",
    "queue",
    "stack",
    "deque",
    "pair",
    "make_pair",
    "sort",
    "swap",
    "reverse",
    "fixed",
    "setw",
    "setprecision",
    "setfill",
    "getline",
    "istream",
    "ostream",
    "stringstream",
    "istringstream",
    "ostringstream",
    "ifstream",
    "ofstream",
    "less",
    "greater",
    "priority_queue",
    "multiset",
    "multimap",
]
PRELUDES = {
    "c": C_PRELUDE,
    "cpp-c": C_PRELUDE,
    "cpp": C_PRELUDE + CPP_HEADERS + "using namespace std;\n",
    "cpp-noglobal": C_PRELUDE
    + CPP_HEADERS
    + "".join(f"using std::{name};\n" for name in _STD_NAMES),
    "opencl": (
        pathlib.Path(__file__).with_name("opencl_prelude.h").read_text()
        if pathlib.Path(__file__).with_name("opencl_prelude.h").is_file()
        else ""
    ),
}
_CPP_LIBRARY_USE = re.compile(
    r"\b(?:cin|cout|cerr|endl|getline|std|string|vector|list|map|set|queue|stack|deque|"
    r"pair|make_pair|iomanip|setw|setprecision|setfill|fixed|stringstream|istringstream|"
    r"ostringstream|ifstream|ofstream|sort|swap|reverse|min|max|priority_queue|multiset|"
    r"multimap|less|greater|ios)\b"
)
_MAIN_WITHOUT_INT = re.compile(r"(?m)^([ \t]*)(?:void[ \t]+)?main[ \t]*\(")


def zig_path() -> pathlib.Path:
    """The ``zig`` executable of the installed ``ziglang`` package."""
    spec = importlib.util.find_spec("ziglang")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the ziglang package is not installed (pip install ziglang)")
    path = pathlib.Path(next(iter(spec.submodule_search_locations))) / "zig"
    if not path.is_file():
        raise RuntimeError(f"ziglang is installed but {path} is missing")
    return path


@functools.cache
def compiler_version() -> str:
    """``zig version`` and clang's version line, e.g. ``zig 0.17.1, clang version 22.1.8``."""
    zig = subprocess.run([zig_path(), "version"], capture_output=True, text=True, check=True)
    clang = subprocess.run(
        [zig_path(), "clang", "--version"], capture_output=True, text=True, check=True
    )
    return f"zig {zig.stdout.strip()}, {clang.stdout.splitlines()[0].strip()}"


@dataclasses.dataclass(frozen=True)
class Attempt:
    """One way to compile a source: the text to compile, its language and options.

    Attributes:
      name: a short label for reports (e.g. ``c++98``, ``gnu89``).
      source: the (fixed-up) source text.
      language: ``c``, ``cpp`` or ``opencl``.
      std: the ``-std=`` value (``-cl-std=`` for OpenCL).
      prelude: key into `PRELUDES` of the header included first (precompiled), or None.
    """

    name: str
    source: str
    language: str
    std: str
    prelude: str | None = None


@dataclasses.dataclass
class CompileResult:
    """Outcome of compiling one source.

    Attributes:
      ir: the textual LLVM IR, or None when every attempt failed.
      attempt: the name of the attempt that succeeded, or None.
      reason: why the last attempt failed (``compile error``, ``timeout``,
        ``memory limit``), or None.
      errors: per failed attempt, its name and the first lines of clang's diagnostics.
      seconds: compile time of the attempts run (0 for a cache hit).
      cached: whether the result came from the cache.
    """

    ir: str | None
    attempt: str | None = None
    reason: str | None = None
    errors: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.ir is not None


def default_attempts(source: str, language: str) -> list[Attempt]:
    """One attempt for `language` with clang's defaults (C: gnu17, C++: c++17, OpenCL 1.2
    with the OpenCL prelude)."""
    if language == "c":
        return [Attempt("c", source, "c", "gnu17")]
    if language == "cpp":
        return [Attempt("c++", source, "cpp", "c++17")]
    if language == "opencl":
        return [Attempt("opencl", source, "opencl", "CL1.2", "opencl")]
    raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")


_UNDECLARED = re.compile(r"use of undeclared identifier '([A-Za-z_][A-Za-z0-9_]*)'")


def guessed_macros(source: str, errors: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Values for identifiers that clang found undeclared and that the program uses like
    object-like macros (never called): POJ-104's published text lost its ``#define``
    lines. ``PI`` gets pi; every other name 1000 (array bounds and string lengths)."""
    names = {}
    for _, message in errors[:1]:
        for name in _UNDECLARED.findall(message):
            if re.search(rf"\b{name}\s*\(", source):
                continue  # Used like a function: no guess.
            names[name] = "3.14159265358979" if name.upper() == "PI" else "1000"
    return names


def with_macros(attempts: Sequence[Attempt], macros: dict[str, str]) -> list[Attempt]:
    """`attempts` with ``#define`` lines for `macros` prepended to each source."""
    defines = "".join(f"#define {k} {v}\n" for k, v in sorted(macros.items()))
    note = ", ".join(sorted(macros))
    return [
        dataclasses.replace(a, name=f"{a.name}, guessed macros {note}", source=defines + a.source)
        for a in attempts
    ]


def poj104_attempts(source: str) -> list[Attempt]:
    """The fix-ups POJ-104 programs need, in the order to try them (see module doc)."""
    fixed = _MAIN_WITHOUT_INT.sub(r"\1int main(", source)
    uses_library = bool(_CPP_LIBRARY_USE.search(fixed))
    attempts = []
    if uses_library:
        attempts.append(Attempt("c++98", fixed, "cpp", "c++98", "cpp"))
        attempts.append(
            Attempt("c++98 without using namespace std", fixed, "cpp", "c++98", "cpp-noglobal")
        )
    else:
        attempts.append(Attempt("c++98 (C headers)", fixed, "cpp", "c++98", "cpp-c"))
        attempts.append(Attempt("c++98", fixed, "cpp", "c++98", "cpp"))
    attempts.append(Attempt("gnu89", fixed, "c", "gnu89", "c"))
    return attempts


class Compiler:
    """Compiles sources to LLVM IR with a cache, limits and precompiled preludes.

    Args:
      cache_dir: where compiled IR, failures and precompiled headers are kept (default
        ``$CODEPROP_CACHE_DIR/ir`` or ``~/.cache/codeprop/ir``).
      timeout_s: wall-clock limit per compilation.
      memory_mb: address-space limit per compilation.
      target: the target triple (fixes the data layout of the IR).
    """

    def __init__(
        self,
        cache_dir: str | os.PathLike | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        memory_mb: int = DEFAULT_MEMORY_MB,
        target: str = "x86_64-linux-gnu",
    ):
        if cache_dir is None:
            base = os.environ.get("CODEPROP_CACHE_DIR") or pathlib.Path.home() / ".cache/codeprop"
            cache_dir = pathlib.Path(base) / "ir"
        self.cache_dir = pathlib.Path(cache_dir)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.target = target
        self._lock = threading.Lock()
        self._pch_lock = threading.Lock()
        self._templates: dict[tuple[str, str], list[str]] = {}
        self._pch: dict[tuple[str, str, str], pathlib.Path] = {}
        self.version = compiler_version()
        os.environ.setdefault("ZIG_GLOBAL_CACHE_DIR", str(self.cache_dir / "zig"))

    # Public API -------------------------------------------------------------------------

    def compile(self, attempts: Sequence[Attempt]) -> CompileResult:
        """Tries `attempts` in order and returns the first success (or every failure)."""
        key = self._key(attempts)
        cached = self._read_cache(key)
        if cached is not None:
            return cached
        result = CompileResult(ir=None)
        for attempt in attempts:
            start = time.perf_counter()
            ir, reason, message = self._run(attempt)
            result.seconds += time.perf_counter() - start
            if ir is not None:
                result.ir, result.attempt, result.reason = ir, attempt.name, None
                break
            result.reason = reason
            result.errors.append((attempt.name, message))
            if reason != "compile error":
                break  # A timeout, memory failure or crash would repeat.
        self._write_cache(key, result)
        return result

    def compile_source(self, source: str, language: str) -> CompileResult:
        return self.compile(default_attempts(source, language))

    def compile_poj104(self, source: str, guess_macros: bool = True) -> CompileResult:
        """A POJ-104 program with the fix-ups of `poj104_attempts`; if all fail on
        undeclared identifiers and `guess_macros`, once more with `guessed_macros`
        defined (the attempt's name lists them)."""
        attempts = poj104_attempts(source)
        result = self.compile(attempts)
        if result.ok or not guess_macros:
            return result
        macros = guessed_macros(source, result.errors)
        if not macros:
            return result
        retry = self.compile(with_macros(attempts[:1], macros))
        if retry.ok:
            return retry
        result.errors.extend(retry.errors)
        return result

    def compile_many(
        self,
        jobs: Sequence,
        workers: int | None = None,
        progress: Callable[[int, int], None] | None = None,
        compile_one: Callable | None = None,
    ) -> list[CompileResult]:
        """`compile_one` (default `compile`: jobs are attempt lists) for every job,
        `workers` at a time (default: one per core); results in the order of `jobs`."""
        compile_one = compile_one or self.compile
        workers = workers or os.cpu_count() or 1
        results: list[CompileResult | None] = [None] * len(jobs)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(compile_one, job): i for i, job in enumerate(jobs)}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                results[futures[future]] = future.result()
                if progress is not None:
                    progress(done, len(jobs))
        return results  # type: ignore[return-value]

    # Internals --------------------------------------------------------------------------

    def _key(self, attempts: Sequence[Attempt]) -> str:
        h = hashlib.sha256()
        h.update(f"{CACHE_FORMAT}\0{self.version}\0{self.target}\0{self.memory_mb}\0".encode())
        for a in attempts:
            prelude = PRELUDES.get(a.prelude, "") if a.prelude else ""
            flags = " ".join(self._driver_flags(a.language, a.std))
            for part in (a.name, a.language, a.std, flags, prelude, a.source):
                h.update(part.encode("utf-8", "surrogateescape"))
                h.update(b"\0")
        return h.hexdigest()

    def _cache_path(self, key: str) -> pathlib.Path:
        return self.cache_dir / key[:2] / f"{key}.json"

    def _read_cache(self, key: str) -> CompileResult | None:
        path = self._cache_path(key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None  # A damaged entry is recompiled.
        data["errors"] = [tuple(e) for e in data["errors"]]
        return CompileResult(**data, cached=True)

    def _write_cache(self, key: str, result: CompileResult) -> None:
        if result.reason == "timeout":
            return  # Timeouts depend on the machine's load: not cached.
        path = self._cache_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dataclasses.asdict(result)
        del data["cached"]
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as tmp:
            json.dump(data, tmp)
        os.replace(tmp.name, path)

    def _driver_flags(self, language: str, std: str) -> list[str]:
        common = ["-S", "-emit-llvm", "-O0", "-g0", "-w", "-target", self.target]
        if language == "c":
            # clang 16+ rejects some old C by default; as GCC did for decades, accept it.
            lenient = [
                f"-Wno-error={w}"
                for w in (
                    "implicit-function-declaration",
                    "implicit-int",
                    "int-conversion",
                    "incompatible-pointer-types",
                    "return-mismatch",
                )
            ]
            return ["cc", "-x", "c", f"-std={std}", "-fno-sanitize=all", *lenient, *common]
        if language == "cpp":
            return ["c++", "-x", "c++", f"-std={std}", "-fno-sanitize=all", *common]
        if language == "opencl":
            return [
                "clang",
                "-x",
                "cl",
                f"-cl-std={std}",
                "-cl-no-stdinc",
                "-Xclang",
                "-fdeclare-opencl-builtins",
                *common,
            ]
        raise ValueError(f"unknown language {language!r}; expected one of {LANGUAGES}")

    def _cc1_template(self, language: str, std: str) -> list[str]:
        """clang -cc1 arguments that zig's driver uses, with the input ``@IN@`` and the
        output ``@OUT@``."""
        with self._lock:
            if (language, std) in self._templates:
                return self._templates[language, std]
            suffix = {"c": ".c", "cpp": ".cpp", "opencl": ".cl"}[language]
            with tempfile.TemporaryDirectory() as tmp:
                src = pathlib.Path(tmp) / f"in{suffix}"
                src.write_text("")
                out = pathlib.Path(tmp) / "out.ll"
                flags = self._driver_flags(language, std)
                run = subprocess.run(
                    [str(zig_path()), *flags, "-###", "-o", str(out), str(src)],
                    capture_output=True,
                    text=True,
                )
                lines = [ln for ln in run.stderr.splitlines() if '"-cc1"' in ln]
                if run.returncode != 0 or not lines:
                    raise RuntimeError(f"cannot read clang's arguments: {run.stderr[-2000:]}")
                args = shlex.split(lines[-1])
                # zig writes through its own cache (``-o /dev/null`` here): take the
                # output, and make relative include paths absolute.
                args[args.index("-o") + 1] = "@OUT@"
                args = ["@IN@" if a == str(src) else a for a in args]
                for i, a in enumerate(args[:-1]):
                    if a in ("-isystem", "-I", "-resource-dir", "-internal-isystem") and (
                        not os.path.isabs(args[i + 1])
                    ):
                        args[i + 1] = os.path.abspath(args[i + 1])
                if "@IN@" not in args:
                    raise RuntimeError(f"unexpected clang arguments: {lines[-1][:2000]}")
                # zig's driver runs clang in-process: call the same binary's front end.
                args[0] = str(zig_path())
                self._templates[language, std] = args
                return args

    def _precompiled(self, language: str, std: str, prelude: str) -> pathlib.Path:
        """The precompiled header of a prelude, built once per cache directory. Builds are
        serialised in this process and atomic across processes (files appear complete,
        under names that hash their content, and are never rewritten)."""
        key = (language, std, prelude)
        with self._pch_lock:
            if key in self._pch:
                return self._pch[key]
            text = PRELUDES[prelude]
            digest = hashlib.sha256(
                f"{CACHE_FORMAT}\0{self.version}\0{language}\0{std}\0{text}".encode()
            ).hexdigest()[:16]
            path = self.cache_dir / "pch" / f"{prelude}-{std}-{digest}.pch"
            if not path.is_file():
                path.parent.mkdir(parents=True, exist_ok=True)
                unique = f"{os.getpid()}.{threading.get_ident()}"
                header = path.with_suffix(".h")
                if not header.is_file():
                    tmp_header = path.with_suffix(f".{unique}.h")
                    tmp_header.write_text(text)
                    with contextlib.suppress(FileExistsError):  # Another process won.
                        os.link(tmp_header, header)
                    tmp_header.unlink()
                kind = {"c": "c-header", "cpp": "c++-header"}[language]
                flags = self._driver_flags(language, std)
                flags = [f for f in flags if f not in ("-S", "-emit-llvm")]
                flags[flags.index("-x") + 1] = kind
                # Instantiating the header's pending templates once, in the header, cuts
                # the cost of loading libc++'s <iostream> from about 90 ms a program to 15.
                flags.append("-fpch-instantiate-templates")
                tmp = path.with_suffix(f".{unique}.tmp")
                run = subprocess.run(
                    [str(zig_path()), *flags, "-o", str(tmp), str(header)],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                if run.returncode != 0:
                    raise RuntimeError(
                        f"cannot precompile the {prelude} prelude: {run.stderr[-2000:]}"
                    )
                os.replace(tmp, path)
            self._pch[key] = path
            return path

    def _run(self, attempt: Attempt) -> tuple[str | None, str | None, str]:
        """(IR or None, failure reason, clang's first diagnostic lines) of one attempt."""
        args = list(self._cc1_template(attempt.language, attempt.std))
        if attempt.prelude is not None and attempt.language == "opencl":
            args[2:2] = ["-include", str(pathlib.Path(__file__).with_name("opencl_prelude.h"))]
        elif attempt.prelude is not None:
            pch = self._precompiled(attempt.language, attempt.std, attempt.prelude)
            # The header is never rewritten (its name hashes its content): no need to
            # compare its time stamp at every use.
            args[2:2] = ["-include-pch", str(pch), "-fno-validate-pch"]
        suffix = {"c": ".c", "cpp": ".cpp", "opencl": ".cl"}[attempt.language]
        with tempfile.TemporaryDirectory() as tmp:
            src = pathlib.Path(tmp) / f"source{suffix}"
            src.write_text(attempt.source, encoding="utf-8", errors="surrogateescape")
            out = pathlib.Path(tmp) / "out.ll"
            # Relative to the working directory: the IR's module name is then ``source.*``.
            args = [src.name if a == "@IN@" else str(out) if a == "@OUT@" else a for a in args]
            # Limits through the shell's ulimit: a preexec_fn is unsafe with the worker
            # threads of compile_many.
            limited = [
                "/bin/sh",
                "-c",
                f"ulimit -v {self.memory_mb * 1024} && ulimit -t {int(self.timeout_s) + 1}"
                ' && exec "$@"',
                "sh",
                *args,
            ]
            try:
                run = subprocess.run(limited, capture_output=True, timeout=self.timeout_s, cwd=tmp)
            except subprocess.TimeoutExpired:
                return None, "timeout", f"no result after {self.timeout_s:g} s"
            stderr = run.stderr.decode("utf-8", "replace")
            if run.returncode == 0 and out.is_file():
                return out.read_text(), None, ""
            if run.returncode == -signal.SIGXCPU:
                return None, "timeout", f"CPU limit of {int(self.timeout_s) + 1} s"
            if run.returncode < 0 or "bad_alloc" in stderr or "out of memory" in stderr.lower():
                # Under an address-space limit, allocation failures crash clang.
                reason = f"memory limit ({self.memory_mb} MiB) or crash"
                return None, reason, f"signal {-run.returncode}: {stderr[-1000:]}".strip()
            errors = [ln for ln in stderr.splitlines() if "error" in ln][:5]
            return None, "compile error", "\n".join(errors) or stderr[-1000:]
