r"""codeprop's command lines: flag parsing and dispatch only.

Run a gin-configured experiment (probes, pretraining):

    python -m codeprop.main --gin_file=gin/experiments/devmap_amd_ast_gcn.gin \
        --workdir=workdir/devmap_amd --gin_bindings="EPOCHS=5"

Run a tool, ``python -m codeprop.main TOOL ARGS`` (``TOOL --help`` lists its flags):

    programl       ProGraML graphs of C/C++/OpenCL/.ll files   (codeprop.graphs.programl.export)
    corpus         the corpus pipeline; also python -m codeprop.corpus
                                                    (codeprop.corpus.pipeline.run)
    tokenizer      train the code tokenizer      (codeprop.tokens.tokenization.train_code_tokenizer)
    quality_model  train the learned quality scorer  (codeprop.corpus.quality_model.train)
    pretrain_demo  corpus -> tokenizer -> pretraining -> generation -> export, small
                                                    (codeprop.recipes.pretraining_demo.run)

The experiment's entry point is the one configurable function the gin files bind:
`codeprop.probes.graph_probe.run_graph_probe` (AST/ProGraML graphs + GNN),
`codeprop.probes.llm_probe.run_llm_probe` (a decoder LM + classification head),
`codeprop.probes.features_probe.run_features_probe` (bag-of-features baselines),
`codeprop.recipes.comparison.run_comparison` (every representation of a benchmark side by
side; gin/experiments/compare_*.gin), `codeprop.recipes.sweep.run_sweep` (a grid search
chosen on validation data; gin/experiments/sweep_*.gin) or `codeprop.train.pretrain.train`
(sharded LM pretraining; gin/runs/pretrain.gin). The full config is written to
``<workdir>/config.gin`` before the run and the operative config to
``<workdir>/operative_config.gin`` after it (a run that fails leaves none);
``run_status.json`` says how the last run ended. One run at a time per workdir, and none
where another experiment's outputs are (``--overwrite`` moves them aside first): see
`codeprop.recipes.workdir`. Progress lines
go to stdout; absl's INFO log is off unless ``--verbosity=0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import gin  # noqa: E402

GIN_FILES = flags.DEFINE_multi_string("gin_file", [], "Gin files, applied in order.")
BINDINGS = flags.DEFINE_multi_string("gin_bindings", [], "Extra gin bindings, after the files.")
WORKDIR = flags.DEFINE_string("workdir", None, "Output directory.", required=True)
COORDINATOR = flags.DEFINE_string(
    "coordinator_address", None, "Multi-host: host:port of process 0 (codeprop.train.distributed)."
)
NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Multi-host: number of processes.")
PROCESS_ID = flags.DEFINE_integer("process_id", None, "Multi-host: this process's rank.")
OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Run even where the workdir holds another experiment's outputs: they are moved to "
    "<workdir>/replaced/<time>/ (a run of the same config resumes without it).",
)
GIN_SEARCH_PATHS = flags.DEFINE_multi_string(
    "gin_search_paths", ["."], "Directories where gin 'include' paths are looked up."
)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow (under tfds, seqio and clu) with file descriptor 2 sent to a
    temporary file, and hides the GPUs from it: its C++ start-up notices (oneDNN, CUDA
    drivers, absl::InitializeLog) ignore TF_CPP_MIN_LOG_LEVEL. They are shown if the
    import fails."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            # TensorFlow only feeds data here: it leaves the GPUs to JAX (and probing them
            # is where it reports a failed cuInit on machines without one).
            tf.config.set_visible_devices([], "GPU")
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def unset_required(fn) -> list[str]:
    """Parameters of `fn` (and of dataclasses bound to it) still bound to gin.REQUIRED,
    e.g. through a ``MACRO = %gin.REQUIRED`` that no experiment file set."""
    missing = []

    def walk(name, value):
        if value is gin.REQUIRED:
            missing.append(name)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            for field in dataclasses.fields(value):
                walk(f"{name}.{field.name}", getattr(value, field.name))

    for name, value in gin.get_bindings(fn).items():
        walk(name, value)
    return missing


def entry_point():
    """The function the parsed gin config binds: exactly one of `ENTRY_POINTS`."""
    # Imported here: they load JAX.
    from codeprop.probes import features_probe, graph_probe, llm_probe
    from codeprop.recipes import code_eval, code_lm, comparison, sweep
    from codeprop.train import pretrain

    def bound(fn) -> bool:
        try:
            return bool(gin.get_bindings(fn))
        except (ValueError, KeyError):  # Not registered: no gin file mentions it.
            return False

    candidates = (
        graph_probe.run_graph_probe,
        llm_probe.run_llm_probe,
        features_probe.run_features_probe,
        comparison.run_comparison,
        sweep.run_sweep,
        code_lm.run,
        code_eval.run_eval,
        pretrain.train,
    )
    entries = [fn for fn in candidates if bound(fn)]
    if code_lm.run in entries and pretrain.train in entries:
        entries.remove(pretrain.train)  # The code LM's pretraining takes those settings.
    if len(entries) != 1:
        names = [fn.__name__ for fn in entries] or ["none"]
        raise ValueError(
            f"the gin files must configure exactly one of {', '.join(ENTRY_POINTS)}; they "
            f"configure {', '.join(names)}"
        )
    return entries[0]


ENTRY_POINTS = (
    "run_graph_probe",
    "run_llm_probe",
    "run_features_probe",
    "run_comparison",
    "run_sweep",
    "run (the code LM)",
    "run_eval",
    "train (pretraining)",
)


def run(
    gin_files: list[str],
    gin_bindings: list[str],
    workdir: str,
    search_paths=(".",),
    overwrite: bool = False,
) -> dict:
    """Parses the gin config and runs the experiment it configures in `workdir`, claimed
    through `codeprop.recipes.workdir.claimed`; returns its results.

    Args:
      overwrite: run even where the workdir holds another experiment's outputs (they are
        moved to ``<workdir>/replaced/``).

    Raises:
      ValueError: a required parameter was not set by the gin files or bindings, or a
        binding defines a macro or binds a configurable that nothing uses.
      codeprop.recipes.workdir.WorkdirError: the workdir holds another experiment's
        outputs, or another run holds it (`WorkdirBusy`).
    """
    # A second run in one process (a notebook, the tests) starts from no bindings: the
    # entry point is chosen by what is bound.
    gin.clear_config(clear_constants=True)
    for path in search_paths:
        gin.add_config_file_search_path(path)
    gin.parse_config_files_and_bindings(gin_files, gin_bindings, finalize_config=False)
    from codeprop.recipes import config_checks

    unused = config_checks.unused_macros(gin_bindings)
    if unused:
        raise ValueError(
            f"gin macros that nothing uses (misspelt?): {', '.join(unused)}; the macros a "
            "run file reads are listed in its header"
        )
    fn = entry_point()
    unused = config_checks.unused_bindings(gin_bindings, f"{fn.__module__}.{fn.__qualname__}")
    if unused:
        raise ValueError(
            f"bindings of configurables that this experiment never calls ({fn.__name__} "
            f"does not reach them): {'; '.join(unused)}"
        )
    missing = unset_required(fn)
    if missing:
        raise ValueError(f"required gin parameters not set: {', '.join(missing)}")
    import jax

    from codeprop.recipes import workdir as workdir_lib

    entry = gin.get_configurable(fn)
    if jax.process_index() != 0:  # multi-host: process 0 keeps the workdir's records
        return entry(workdir=workdir)
    # A finished run is one with an operative config: a run that fails leaves none.
    with workdir_lib.claimed(workdir, gin.config_str(), overwrite) as claim:
        results = entry(workdir=workdir)
        if isinstance(results, dict) and results.get("preempted"):  # resumable
            claim.stopped()
        else:
            claim.finished(gin.operative_config_str())
    return results


def main(argv):
    from codeprop.probes import report

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}; tools: {', '.join(TOOLS)}")
    if not flags.FLAGS["verbosity"].present:  # absl's INFO log only when asked for.
        logging.set_verbosity(logging.WARNING)
    import_tensorflow_quietly()
    from codeprop.train import distributed, host_memory

    host_memory.keep_freed_memory()  # Before JAX starts its threads; see the module.

    distributed.initialize(COORDINATOR.value, NUM_PROCESSES.value, PROCESS_ID.value)
    results = run(
        GIN_FILES.value, BINDINGS.value, WORKDIR.value, GIN_SEARCH_PATHS.value, OVERWRITE.value
    )
    if "arm_runs" in results:  # a comparison or a sweep
        for name, state in results["arm_runs"].items():
            print(f"{name}: {state}")
        if results.get("preempted"):
            print(f"stopped by SIGTERM; the same command resumes the arms in {WORKDIR.value}")
            return
        for name, reason in results["left_out"].items():
            print(f"left out of the report: {name}: {reason}")
        print(f"report written to {results['report']}")
        return
    if results.get("preempted"):  # SIGTERM: stopped at a safe point, resumable
        print(json.dumps(results, indent=1))
        print(f"stopped by SIGTERM; the same command resumes the run in {WORKDIR.value}")
        return
    if "benchmark" not in results:  # pretraining
        print(json.dumps(results, indent=1))
        print(f"checkpoints and TensorBoard events in {WORKDIR.value}")
        return
    print(report.terminal(results))
    print(f"results written to {WORKDIR.value}/results.json and results.md")


def programl_main(argv: list[str] | None = None) -> int:
    """``programl INPUT... --out DIR``: ProGraML node-link JSON for each C/C++/OpenCL/.ll
    input (`codeprop.graphs.programl.export`). Returns 0 when every input gave a graph,
    else 1 (the failures are printed and in DIR/report.json)."""
    from codeprop.graphs import programl

    parser = argparse.ArgumentParser(
        prog="python -m codeprop.main programl",
        description="Write DIR/<input stem>.json, a ProGraML graph, for each input.",
    )
    parser.add_argument("inputs", nargs="+", help=".c, .cc/.cpp/.cxx, .cl or .ll files")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--per_value", action="store_true", help="one variable node per value, not per use"
    )
    parser.add_argument(
        "--no_validate", action="store_true", help="skip parsing the IR with LLVM first"
    )
    parser.add_argument("--jobs", type=int, default=None, help="parallel compilations")
    parser.add_argument("--cache_dir", default=None, help="compiled-IR cache directory")
    args = parser.parse_args(argv)
    outcomes = programl.export(
        args.inputs,
        args.out,
        per_use=not args.per_value,
        validate=not args.no_validate,
        workers=args.jobs,
        cache_dir=args.cache_dir,
    )
    print("\n".join(programl.export_lines(outcomes, args.out)))
    return 1 if any(not o["ok"] for o in outcomes) else 0


def corpus_main(argv: list[str] | None = None) -> int:
    """``corpus --source PATH [--source PATH ...] --out DIR`` (also ``python -m
    codeprop.corpus``): the corpus pipeline (`codeprop.corpus.pipeline.run`)."""
    from codeprop.corpus import dedup, filters, pipeline, quality

    parser = argparse.ArgumentParser(
        prog="python -m codeprop.corpus",
        description="Filter and deduplicate code into DIR/kept.jsonl, dropped.jsonl, report.json",
    )
    parser.add_argument(
        "--source",
        action="append",
        required=True,
        help="a directory, glob, .jsonl(.gz) file, tfds:NAME:SPLIT[:FIELD[:LANGUAGE]], or default",
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--languages", default=None, help="comma-separated languages to keep")
    parser.add_argument("--min_language_bytes", type=int, default=0)
    parser.add_argument("--quality_threshold", type=float, default=quality.QualityConfig.threshold)
    parser.add_argument("--no_quality_filter", action="store_true", help="score but keep all")
    parser.add_argument("--near_dup_threshold", type=float, default=dedup.DedupConfig.threshold)
    parser.add_argument("--max_line_length", type=int, default=filters.FilterConfig.max_line_length)
    parser.add_argument("--max_files_per_root", type=int, default=None, help="default corpus cap")
    parser.add_argument("--quality_model", default=None, help="a trained learned-quality scorer")
    parser.add_argument("--quality_model_threshold", type=float, default=2.5)
    parser.add_argument("--perplexity_checkpoint", default=None, help="a decoder checkpoint")
    parser.add_argument("--perplexity_tokenizer", default="bytes", help="its tokenizer")
    parser.add_argument("--perplexity_percentile", type=float, default=90.0)
    args = parser.parse_args(argv)
    learned = perplexity = None
    if args.quality_model:
        learned = pipeline.LearnedQualityConfig(args.quality_model, args.quality_model_threshold)
    if args.perplexity_checkpoint:
        perplexity = pipeline.perplexity_lib.PerplexityConfig(
            args.perplexity_checkpoint, args.perplexity_tokenizer, args.perplexity_percentile
        )
    config = pipeline.CorpusConfig(
        filters=filters.FilterConfig(max_line_length=args.max_line_length),
        dedup=dedup.DedupConfig(threshold=args.near_dup_threshold),
        quality=quality.QualityConfig(threshold=args.quality_threshold),
        quality_filter=not args.no_quality_filter,
        languages=tuple(args.languages.split(",")) if args.languages else None,
        min_language_bytes=args.min_language_bytes,
        max_files_per_root=args.max_files_per_root,
        learned_quality=learned,
        perplexity=perplexity,
    )
    report = pipeline.run(args.source, args.out, config)
    print("\n".join(pipeline.summary_lines(report)))
    print(f"written to {args.out}/kept.jsonl, dropped.jsonl and report.json")
    return 0


def quality_model_main(argv: list[str] | None = None) -> int:
    """``quality_model --annotations FILE.jsonl --out DIR``: train the learned quality
    scorer on ``{"code", "score"}`` lines (see `codeprop.corpus.quality_model.RUBRIC`)."""
    from codeprop.corpus import quality_model

    parser = argparse.ArgumentParser(
        prog="python -m codeprop.main quality_model",
        description="Train the learned quality scorer on 0-5 annotations.",
    )
    parser.add_argument("--annotations", required=True, help='JSONL of {"code", "score"}')
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--epochs", type=int, default=quality_model.ScorerConfig.epochs)
    parser.add_argument("--print_rubric", action="store_true", help="print the prompt template")
    args = parser.parse_args(argv)
    if args.print_rubric:
        print(quality_model.RUBRIC)
    codes, scores = quality_model.read_annotations(args.annotations)
    scorer = quality_model.train(codes, scores, quality_model.ScorerConfig(epochs=args.epochs))
    scorer.save(args.out)
    print(f"trained on {len(codes)} files; written to {args.out}")
    return 0


def pretrain_demo_main(argv: list[str] | None = None) -> int:
    """``pretrain_demo --workdir DIR``: corpus, tokenizer, pretraining, generation and
    export of a tiny CodeShell on the default corpus
    (`codeprop.recipes.pretraining_demo.run`)."""
    from codeprop.recipes import pretraining_demo as demo
    from codeprop.train import host_memory

    parser = argparse.ArgumentParser(
        prog="python -m codeprop.main pretrain_demo",
        description="Pretrain a tiny CodeShell on the default corpus (about 10 minutes).",
    )
    parser.add_argument("--workdir", required=True, help="output directory")
    defaults = demo.DemoConfig()
    parser.add_argument("--steps", type=int, default=defaults.steps)
    parser.add_argument("--max_files_per_root", type=int, default=defaults.max_files_per_root)
    parser.add_argument("--vocab_size", type=int, default=defaults.vocab_size)
    parser.add_argument(
        "--overwrite", action="store_true", help="move another demo's files to replaced/"
    )
    args = parser.parse_args(argv)
    host_memory.keep_freed_memory()  # Before JAX starts its threads; see the module.
    import_tensorflow_quietly()
    config = dataclasses.replace(
        defaults,
        steps=args.steps,
        max_files_per_root=args.max_files_per_root,
        vocab_size=args.vocab_size,
        eval_every=min(defaults.eval_every, args.steps),
    )
    from codeprop.recipes import workdir as workdir_lib

    # Its settings in config.gin's place: one run at a time, another demo's files refused.
    settings = "".join(f"pretrain_demo.{k} = {v!r}\n" for k, v in vars(config).items())
    with workdir_lib.claimed(args.workdir, settings, args.overwrite) as claim:
        report = demo.run(args.workdir, config)
        claim.finished(settings)
    print(demo.markdown(report))
    print(f"report written to {args.workdir}/report.md")
    return 0


def tokenizer_main(argv: list[str] | None = None) -> int:
    """``tokenizer --corpus DIR/kept.jsonl --out TOKDIR``: train the SentencePiece code
    tokenizer and write its compression table against GPT-2
    (`codeprop.tokens.tokenization.train_code_tokenizer`)."""
    from codeprop.tokens import tokenization

    parser = argparse.ArgumentParser(
        prog="python -m codeprop.main tokenizer",
        description="Train the code tokenizer: TOKDIR/code.model and compression.json.",
    )
    parser.add_argument("--corpus", required=True, help="kept.jsonl of the corpus pipeline")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--vocab_size", type=int, default=16000)
    parser.add_argument("--holdout_every", type=int, default=10, help="every k-th doc is held out")
    args = parser.parse_args(argv)
    report = tokenization.train_code_tokenizer(
        args.corpus, args.out, args.vocab_size, args.holdout_every
    )
    print("\n".join(tokenization.compression_lines(report)))
    print(f"written to {args.out}/code.model and compression.json")
    return 0


TOOLS = {
    "programl": programl_main,
    "corpus": corpus_main,
    "tokenizer": tokenizer_main,
    "quality_model": quality_model_main,
    "pretrain_demo": pretrain_demo_main,
}


def cli(argv: list[str] | None = None) -> int | None:
    """``python -m codeprop.main``: a tool when the first argument names one (`TOOLS`),
    else the gin experiment runner (absl flags)."""
    argv = sys.argv if argv is None else argv
    if len(argv) > 1 and argv[1] in TOOLS:
        return TOOLS[argv[1]](argv[2:])
    app.run(main, argv)
    return None


if __name__ == "__main__":
    sys.exit(cli())
