"""Checks of a parsed gin config that gin does not make itself.

gin refuses a misspelt parameter name, but a misspelt *macro* (``EPOCHZ = 1`` where the
run file reads ``%EPOCHS``) is a new macro that nothing reads: the run would go on with the
default. `unused_macros` finds such macros; `codeprop.main` refuses a run whose bindings
define one, and `codeprop.recipes.arms` an arm of a comparison or sweep.
"""

from __future__ import annotations

import re

import gin


def macro_name(binding: str) -> str | None:
    """``NAME`` of a macro binding ``NAME = value``; None for a parameter binding."""
    name = binding.split("=", 1)[0].strip()
    return name if "=" in binding and re.fullmatch(r"[A-Za-z_]\w*", name) else None


def unused_macros(bindings: list[str] | None = None) -> list[str]:
    """Macros of the parsed config (``NAME = value``) that no binding or other macro
    refers to (``%NAME``); with ``bindings``, only those that these bindings define (a
    run file's macro that a binding bypasses, e.g. ``max_folds = 1`` beside
    ``MAX_FOLDS = None``, is not the user's mistake)."""
    from gin import config as gin_config  # gin has no public walk over its bindings

    defined, used = set(), set()

    def walk(value):
        if isinstance(value, gin_config.ConfigurableReference):
            if value.selector == "gin.macro":
                used.update(value.scopes)
        elif isinstance(value, (list, tuple, set)):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    for (scope, selector), params in gin_config._CONFIG.items():
        if selector == "gin.macro":
            defined.add(scope)
        for value in params.values():
            walk(value)
    if bindings is not None:
        defined &= {macro_name(b) for b in bindings}
    return sorted(defined - used)


def parse(files: list[str], bindings: list[str]) -> list[str]:
    """Parses ``files`` and ``bindings`` into a cleared gin (search path: the working
    directory); returns the macros that ``bindings`` define and nothing uses."""
    gin.clear_config(clear_constants=True)
    gin.add_config_file_search_path(".")
    gin.parse_config_files_and_bindings(files, bindings, finalize_config=False)
    return unused_macros(bindings)
