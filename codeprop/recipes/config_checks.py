"""Checks of a parsed gin config that gin does not make itself.

gin refuses a misspelt parameter name, but a misspelt *macro* (``EPOCHZ = 1`` where the
run file reads ``%EPOCHS``) is a new macro that nothing reads: the run would go on with the
default. `unused_macros` finds such macros; `codeprop.main` refuses a run whose bindings
define one, and `codeprop.recipes.arms` an arm of a comparison or sweep.

Likewise a binding of a real parameter of a configurable that the experiment never calls
(``gnn.GCNConfig.hidden_dim = 64`` in a ProGraML run, whose model is an
``rgcn.RGCNConfig``): with gin's dynamic registration a binding acts only where the
configurable is reached through the config's references (``@gnn.GCNConfig()``) from the
entry point. `unused_bindings` finds them; `codeprop.main` refuses them.
"""

from __future__ import annotations

import re

import gin


def macro_name(binding: str) -> str | None:
    """``NAME`` of a macro binding ``NAME = value``; None for a parameter binding."""
    name = binding.split("=", 1)[0].strip()
    return name if "=" in binding and re.fullmatch(r"[A-Za-z_]\w*", name) else None


def references(value):
    """The gin references (``@name``, ``%MACRO``) in a bound value, at any depth of its
    lists, tuples, sets and dicts (a dict of parameters: in its values)."""
    from gin import config as gin_config  # gin has no public walk over its bindings

    if isinstance(value, gin_config.ConfigurableReference):
        yield value
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from references(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from references(item)


def unused_macros(bindings: list[str] | None = None) -> list[str]:
    """Macros of the parsed config (``NAME = value``) that no binding or other macro
    refers to (``%NAME``); with ``bindings``, only those that these bindings define (a
    run file's macro that a binding bypasses, e.g. ``max_folds = 1`` beside
    ``MAX_FOLDS = None``, is not the user's mistake)."""
    from gin import config as gin_config  # gin has no public walk over its bindings

    defined, used = set(), set()
    for (scope, selector), params in gin_config._CONFIG.items():
        if selector == "gin.macro":
            defined.add(scope)
        for reference in references(params):
            if reference.selector == "gin.macro":
                used.update(reference.scopes)
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


def reachable(entry: str) -> set[str]:
    """The selectors of the configurables that the parsed config reaches from the entry
    point `entry` (a full selector, e.g. ``codeprop.probes.graph_probe.run_graph_probe``)
    and from the statically registered configurables, through references (``@name``,
    ``@name()``), also through macros."""
    from gin import config as gin_config  # gin has no public walk over its bindings

    by_selector: dict[str, list[dict]] = {}
    for (scope, selector), params in gin_config._CONFIG.items():
        key = f"gin.macro:{scope}" if selector == "gin.macro" else selector
        by_selector.setdefault(key, []).append(params)
    # A statically registered configurable (``@gin.configurable`` in codeprop, e.g.
    # `codeprop.train.pretrain.train`) takes its bindings wherever codeprop calls it.
    registered = {
        key: gin_config._REGISTRY.get_match(key)
        for key in by_selector
        if not key.startswith("gin.macro:")
    }
    static = [key for key, found in registered.items() if found and found.import_source is None]
    seen, stack = set(), [entry, *static]
    while stack:
        selector = stack.pop()
        if selector in seen:
            continue
        seen.add(selector)
        for params in by_selector.get(selector, ()):
            for reference in references(params):
                if reference.selector == "gin.macro":
                    stack.extend(f"gin.macro:{name}" for name in reference.scopes)
                else:
                    stack.append(reference.configurable.selector)
    return {s for s in seen if not s.startswith("gin.macro:")}


def unused_bindings(bindings: list[str], entry: str) -> list[str]:
    """The parameter bindings among `bindings` (``name.param = value``, scoped or not)
    whose configurable the experiment of entry point `entry` never reaches."""
    from gin import config as gin_config

    reached = reachable(entry)
    unused = []
    for binding in bindings:
        if "=" not in binding or macro_name(binding):
            continue
        target = binding.split("=", 1)[0].strip().rsplit("/", 1)[-1]
        if "." not in target:
            continue
        name = target.rsplit(".", 1)[0]
        try:
            selector = gin_config._REGISTRY.get_match(name).selector
        except (KeyError, ValueError, AttributeError):
            continue  # not a configurable gin knows: gin itself says so
        if selector not in reached:
            unused.append(binding.strip())
    return unused
