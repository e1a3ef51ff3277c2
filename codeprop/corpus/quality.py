"""Rule-based code quality: metrics per document and a score with a threshold.

The CodeShell report scores files on lines of code, comment ratio, characters per line,
use of well-known third-party libraries, syntactic complexity and style, and keeps files
above a threshold. `metrics` measures them (complexity from a tree-sitter parse for Python,
C and C++; other languages get a neutral complexity component); `score` maps each metric to
[0, 1] by whether it lies in a typical range for maintained code and averages them.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import tree_sitter
import tree_sitter_python

from codeprop.graphs import ast

_LINE_COMMENT = {
    "python": "#",
    "shell": "#",
    "ruby": "#",
    "perl": "#",
    "r": "#",
    "yaml": "#",
    "toml": "#",
    "julia": "#",
    "lua": "--",
    "sql": "--",
    "haskell": "--",
}
_C_LIKE = {"c", "cpp", "opencl", "java", "javascript", "typescript", "go", "rust", "c-sharp",
           "php", "scala", "kotlin", "swift", "d"}  # fmt: skip
# Imports of widely used libraries (a sign of practical, maintained code).
WELL_KNOWN = {
    "python": ("numpy", "pandas", "scipy", "torch", "tensorflow", "jax", "sklearn", "requests",
               "flask", "django", "matplotlib", "sqlalchemy", "pytest", "click", "yaml", "absl",
               "collections", "itertools", "functools", "typing", "dataclasses", "re", "os",
               "json", "logging", "pathlib"),
    "c": ("stdio.h", "stdlib.h", "string.h", "math.h", "pthread.h", "stdint.h", "assert.h"),
    "cpp": ("iostream", "vector", "string", "map", "algorithm", "memory", "unordered_map",
            "boost/", "Eigen/", "stdio.h", "cmath"),
}  # fmt: skip
_CONTROL = {
    "python": {"if_statement", "for_statement", "while_statement", "try_statement",
               "with_statement", "match_statement", "elif_clause", "except_clause",
               "conditional_expression", "list_comprehension"},
    "c": {"if_statement", "for_statement", "while_statement", "do_statement",
          "switch_statement", "case_statement", "conditional_expression"},
}  # fmt: skip
_CONTROL["cpp"] = _CONTROL["c"] | {"for_range_loop", "try_statement", "catch_clause"}
_SCOPES = {"block", "compound_statement", "function_definition", "class_definition"}


@dataclasses.dataclass(frozen=True)
class QualityConfig:
    """Typical ranges of the metrics and the score threshold."""

    min_lines_of_code: int = 5
    max_lines_of_code: int = 5000
    comment_ratio: tuple[float, float] = (0.02, 0.8)
    chars_per_line: tuple[float, float] = (8.0, 90.0)
    decision_density: tuple[float, float] = (0.005, 0.4)
    max_nesting: int = 8
    max_trailing_whitespace: float = 0.1
    threshold: float = 0.5


@functools.cache
def _parser(language: str) -> tree_sitter.Parser | None:
    if language == "python":
        return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))
    if language in ("c", "cpp"):
        return tree_sitter.Parser(ast.grammar(language))
    return None


def _comment_lines(lines: list[str], language: str) -> int:
    marker = _LINE_COMMENT.get(language)
    count, in_block = 0, False
    for line in lines:
        s = line.strip()
        if language in _C_LIKE:
            if in_block or s.startswith(("//", "/*", "*")):
                count += 1
            if "/*" in s and "*/" not in s[s.index("/*") :]:
                in_block = True
            elif "*/" in s:
                in_block = False
        elif marker and s.startswith(marker):
            count += 1
        elif language == "python" and s.startswith(('"""', "'''")):
            count += 1  # docstring lines (their first line)
    return count


def _complexity(content: str, language: str) -> tuple[float | None, int | None]:
    """(control-flow nodes per line of code, deepest nesting of scopes), or Nones."""
    parser = _parser(language)
    if parser is None:
        return None, None
    tree = parser.parse(content.encode("utf-8", "surrogatepass"))
    control, deepest = 0, 0
    stack = [(tree.root_node, 0)]
    kinds = _CONTROL[language]
    while stack:
        node, depth = stack.pop()
        if node.type in kinds:
            control += 1
        depth += node.type in _SCOPES
        deepest = max(deepest, depth)
        stack.extend((child, depth) for child in node.children)
    return control, deepest


def _imports(content: str, language: str) -> set[str]:
    if language == "python":
        found = re.findall(r"^\s*(?:from|import)\s+([A-Za-z_][\w.]*)", content, re.MULTILINE)
        return {name.split(".")[0] for name in found}
    if language in ("c", "cpp"):
        return set(re.findall(r"^\s*#\s*include\s*[<\"]([^>\"]+)[>\"]", content, re.MULTILINE))
    return set()


def metrics(content: str, language: str) -> dict:
    """Quality metrics of one document (see the module docstring)."""
    lines = content.splitlines()
    non_blank = [line for line in lines if line.strip()]
    comments = _comment_lines(non_blank, language)
    loc = len(non_blank) - comments
    control, nesting = _complexity(content, language)
    imports = _imports(content, language)
    known = WELL_KNOWN.get(language, ())
    libraries = sorted(i for i in imports if any(i == k or i.startswith(k) for k in known))
    indented = [line for line in non_blank if line[:1] in (" ", "\t")]
    tabs = sum(line.startswith("\t") for line in indented)
    return {
        "lines_of_code": loc,
        "comment_ratio": comments / max(len(non_blank), 1),
        "chars_per_line": sum(len(line) for line in non_blank) / max(len(non_blank), 1),
        "well_known_libraries": libraries,
        "decision_density": None if control is None else control / max(loc, 1),
        "max_nesting": nesting,
        "trailing_whitespace": sum(line != line.rstrip() for line in lines) / max(len(lines), 1),
        "mixed_indentation": 0 < tabs < len(indented),
    }


def _within(value: float, bounds: tuple[float, float]) -> float:
    return 1.0 if bounds[0] <= value <= bounds[1] else 0.0


def score(m: dict, language: str, config: QualityConfig = QualityConfig()) -> float:
    """The mean of the metric components in [0, 1]."""
    parts = [
        1.0 if config.min_lines_of_code <= m["lines_of_code"] <= config.max_lines_of_code else 0.0,
        _within(m["comment_ratio"], config.comment_ratio),
        _within(m["chars_per_line"], config.chars_per_line),
        # Libraries: a bonus where a list exists; neutral for other languages.
        (1.0 if m["well_known_libraries"] else 0.5) if language in WELL_KNOWN else 0.5,
        # Complexity: straight-line dumps and deeply nested code both score 0.
        0.5
        if m["decision_density"] is None
        else _within(m["decision_density"], config.decision_density)
        * (1.0 if m["max_nesting"] <= config.max_nesting else 0.0),
        (1.0 if m["trailing_whitespace"] <= config.max_trailing_whitespace else 0.0)
        * (0.5 if m["mixed_indentation"] else 1.0),
    ]
    return sum(parts) / len(parts)
