import pathlib

import pytest

import gin
from codeprop.evals import tasks
from codeprop.models import decoder, gnn, rgcn
from codeprop.probes import features_probe, graph_probe, llm_probe, protocol
from codeprop.recipes import arms as arms_lib
from codeprop.recipes import code_eval, code_lm, comparison, config_checks, sweep
from codeprop.train import classifier, partitioning, pretrain

from conftest import REPO

EXPERIMENTS = sorted((REPO / "gin" / "experiments").glob("*.gin"))


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    gin.add_config_file_search_path(str(REPO))
    yield
    gin.clear_config()


def test_there_are_experiments():
    names = {p.name for p in EXPERIMENTS}
    assert {"devmap_amd_ast_gcn.gin", "devmap_nvidia_ast_gcn.gin", "poj104_ast_gcn.gin"} <= names


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_experiment_parses_and_binds_everything(path: pathlib.Path):
    files, bindings = [str(path)], []
    if path.name == "pretrain_tiny_corpus.gin":  # the corpus's files are the user's
        bindings = ["CORPUS_DIR = 'corpus'", "VOCABULARY = 'tok/code.model'", "VOCAB_SIZE = 4096"]
    if path.name.endswith("_llm.gin"):  # the paper's protocol, given one of its models
        files.append(str(REPO / "gin/models/tiny_starcoder_py.gin"))
        bindings = ["CHECKPOINT = 'checkpoints/tiny_starcoder_py'"]
    gin.parse_config_files_and_bindings(files, bindings, finalize_config=False)
    from codeprop import main

    entry = main.entry_point()
    assert main.unset_required(entry) == []
    bound = gin.get_bindings(entry)
    if entry is pretrain.train:
        config = bound["model"]
        assert isinstance(config, decoder.DecoderConfig) and config.num_kv_heads < config.num_heads
        assert bound["steps"] > 0 and bound["seq_len"] > 0 and callable(bound["data"])
        return
    if entry is comparison.run_comparison:
        check_comparison(bound)
        return
    if entry is code_eval.run_eval:
        assert bound["task"] in tasks.TASKS and bound["checkpoint"] == "workdir/code_lm"
        settings = bound["settings"]
        assert (settings.samples, settings.temperature) == (1, 0.0)
        return
    if entry is code_lm.run:
        config = bound["model"]
        assert config.vocab_size == bound["vocab_size"] and config.num_kv_heads < config.num_heads
        assert bound["sources"] == ("poj104-train", "default")
        # gin/models/decoder_code_lm.gin (the from-scratch arms) is the same architecture.
        gin.clear_config()
        gin.parse_config_file("gin/models/decoder_code_lm.gin")
        assert gin.get_configurable(decoder.DecoderConfig)() == config
        return
    if entry is sweep.run_sweep:
        check_sweep(bound, path.name)
        return
    if path.name.endswith("_llm.gin"):
        assert bound["checkpoint"] == bound["tokenizer"] == "checkpoints/tiny_starcoder_py"
        assert (bound["dtype"], bound["remat"], bound["decoder"].vocab_size) == (
            "bfloat16",
            "full",
            49152,
        )
        assert bound["train"].epochs == 10  # the paper's
    elif entry is llm_probe.run_llm_probe and "code_lm" in path.name:
        # The code LM pretrained here, or its architecture from scratch, with its tokenizer.
        assert bound["tokenizer"] == "workdir/code_lm/hf/tokenizer.json"
        if "checkpoint" in bound:
            assert bound["checkpoint"] == "workdir/code_lm/hf"
        else:
            config = gin.get_configurable(decoder.DecoderConfig)()
            assert (config.vocab_size, config.embed_dim, config.num_layers) == (8192, 256, 6)
        assert bound.get("aux_inputs", False) == bound["benchmark"].startswith("devmap")
    elif entry is llm_probe.run_llm_probe and "checkpoint" in bound:
        assert bound["checkpoint"] == "workdir/pretrain_demo/hf"  # the demo's export
        assert bound["tokenizer"].endswith("code.model")
        assert bound.get("aux_inputs", False) == bound["benchmark"].startswith("devmap")
    elif entry is llm_probe.run_llm_probe:
        config = gin.get_configurable(decoder.DecoderConfig)()
        assert (config.vocab_size, config.num_heads, config.num_kv_heads) == (263, 4, 2)
        assert bound["tokenizer"] == "bytes" and bound["pooling"] == "last"
    assert bound["benchmark"] in ("devmap/amd", "devmap/nvidia", "poj104")
    assert bound["protocol"] in protocol.PROTOCOLS
    train = gin.get_configurable(classifier.TrainConfig)()
    if entry is llm_probe.run_llm_probe:
        pass
    elif bound["representation"] == "ast":
        model = gin.get_configurable(gnn.GCNConfig)()
        assert model.num_layers == 2
    else:
        assert bound["representation"] == "programl"
        model = gin.get_configurable(rgcn.RGCNConfig)()
        # The paper's sizes: devmap 1 layer 32 -> 64, POJ-104 2 layers 64 -> 64.
        want = (1, 32, 64) if bound["benchmark"].startswith("devmap") else (2, 64, 64)
        assert (model.num_layers, model.hidden_dim, model.embed_dim) == want
        assert (bound["node_texts"], bound["vocab_min_count"]) == ("statement", 5)
        # devmap's 61 validation rows per fold: selection by validation loss.
        want = "loss" if bound["benchmark"].startswith("devmap") else "accuracy"
        assert train.selection == want
        if bound["benchmark"] == "poj104":  # RESULTS.md's 96.7% recipe
            assert (train.epochs, train.schedule, train.warmup_epochs) == (60, "cosine", 1)
            assert model.dropout_rate == 0.2
    assert train.epochs > 0


def check_comparison(bound: dict) -> None:
    """Every arm of a comparison parses, configures a probe of the comparison's benchmark
    and protocol with the auxiliary inputs on devmap, and the names are distinct dirs."""
    from codeprop import main

    arms = bound["arms"]
    assert len({arms_lib.slug(name) for name in arms}) == len(arms) >= 8
    arm_bindings = bound.get("arm_bindings") or {}
    assert set(arm_bindings) <= set(arms)
    kinds = set()
    for name, spec in arms.items():
        files, bindings = arms_lib.split_spec(spec)
        bindings += arm_bindings.get(name, [])
        assert all((REPO / f).is_file() for f in files), name
        gin.clear_config(clear_constants=True)
        gin.parse_config_files_and_bindings(files, bindings, finalize_config=False)
        entry = main.entry_point()
        assert entry in (
            graph_probe.run_graph_probe,
            llm_probe.run_llm_probe,
            features_probe.run_features_probe,
        ), name
        arm = gin.get_bindings(entry)
        assert (arm["benchmark"], arm["protocol"]) == (bound["benchmark"], bound["protocol"])
        assert arm.get("aux_inputs", False) == bound["benchmark"].startswith("devmap"), name
        kinds.add((entry.__name__, arm.get("frozen", False)))
    # Trained and frozen graph and LLM arms, and a bag-of-features baseline.
    assert kinds >= {
        ("run_graph_probe", False),
        ("run_graph_probe", True),
        ("run_llm_probe", False),
        ("run_llm_probe", True),
        ("run_features_probe", False),
    }


def check_sweep(bound: dict, name: str) -> None:
    """Every point of the grid parses to the base experiment with that point's values; the
    paper's grid searches sweep its axes (learning rate; for GNNs also hidden and
    embedding sizes)."""
    from codeprop import main

    grid = bound["grid"]
    paper = name in ("sweep_devmap_amd_ast_gcn.gin", "sweep_devmap_amd_codeshell_demo.gin")
    assert not paper or "LEARNING_RATE" in grid
    files, base_bindings = arms_lib.split_spec(bound["base"])
    for point in sweep.grid_points(grid):
        gin.clear_config(clear_constants=True)
        own = [f"{name} = {value!r}" for name, value in point.items()]
        gin.parse_config_files_and_bindings(files, base_bindings + own, finalize_config=False)
        got = {k: gin.query_parameter(k if "." in k else f"%{k}") for k in point}
        assert got == point
        if not paper:
            continue
        train = gin.get_configurable(classifier.TrainConfig)()
        got = {"LEARNING_RATE": train.learning_rate}
        if main.entry_point() is graph_probe.run_graph_probe:
            assert len(grid) == 3
            model = gin.get_configurable(gnn.GCNConfig)()
            got |= {"gnn.GCNConfig.hidden_dim": model.hidden_dim,
                    "gnn.GCNConfig.embed_dim": model.embed_dim}  # fmt: skip
        assert got == point


def test_paper_sizes():
    gin.parse_config_files_and_bindings([str(REPO / "gin/experiments/devmap_amd_ast_gcn.gin")], [])
    model = gin.get_configurable(gnn.GCNConfig)()
    assert (model.hidden_dim, model.embed_dim) == (32, 36)
    assert gin.get_configurable(classifier.TrainConfig)().epochs == 60
    gin.clear_config()
    gin.parse_config_files_and_bindings([str(REPO / "gin/experiments/poj104_ast_gcn.gin")], [])
    model = gin.get_configurable(gnn.GCNConfig)()
    assert (model.hidden_dim, model.embed_dim) == (64, 256)


def test_typo_fails_loudly():
    with pytest.raises(ValueError, match="hiden_dim"):
        gin.parse_config_files_and_bindings(
            [str(REPO / "gin/experiments/devmap_amd_ast_gcn.gin")], ["gnn.GCNConfig.hiden_dim = 3"]
        )


def test_required_macros_must_be_set(tmp_path):
    from codeprop import main

    with pytest.raises(ValueError, match="not set: benchmark, protocol, train.epochs"):
        main.run([str(REPO / "gin/runs/graph_probe.gin")], [], str(tmp_path), [str(REPO)])


def test_a_macro_that_nothing_uses_is_an_error_before_the_run(tmp_path):
    from codeprop import main

    experiment = str(REPO / "gin/experiments/devmap_amd_ast_gcn.gin")
    with pytest.raises(ValueError, match=r"macros that nothing uses \(misspelt\?\): EPOCHZ;"):
        main.run([experiment], ["EPOCHZ = 1"], str(tmp_path / "run"), [str(REPO)])
    assert not (tmp_path / "run").exists()  # refused before the workdir was made
    # A macro used only by another macro is used; the first is not.
    with pytest.raises(ValueError, match=r"nothing uses \(misspelt\?\): OUTER;"):
        main.run([experiment], ["OUTER = %INNER", "INNER = 3"], str(tmp_path), [str(REPO)])


def test_a_run_files_macro_that_a_binding_bypasses_is_not_the_users_mistake():
    bindings = ["graph_probe.run_graph_probe.max_folds = 1", "EPOCHZ = 2"]
    gin.parse_config_files_and_bindings(
        [str(REPO / "gin/experiments/devmap_amd_ast_gcn.gin")], bindings, finalize_config=False
    )
    assert config_checks.unused_macros() == ["EPOCHZ", "MAX_FOLDS"]
    assert config_checks.unused_macros(bindings) == ["EPOCHZ"]


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_no_experiment_defines_a_macro_that_nothing_uses(path):
    gin.parse_config_files_and_bindings([str(path)], [], finalize_config=False)
    assert config_checks.unused_macros() == []


def test_a_binding_of_a_configurable_the_experiment_never_calls_is_an_error(tmp_path):
    from codeprop import main

    programl = str(REPO / "gin/experiments/devmap_amd_programl_rgcn.gin")
    dead = "gnn.GCNConfig.hidden_dim = 64"  # the GCN of the AST runs; this one is an R-GCN
    with pytest.raises(ValueError, match=r"never calls \(run_graph_probe does not reach them\): "
                       r"gnn.GCNConfig.hidden_dim = 64$"):  # fmt: skip
        main.run([programl], [dead], str(tmp_path / "run"), [str(REPO)])
    assert not (tmp_path / "run").exists()  # refused before the workdir was made
    live = ["rgcn.RGCNConfig.num_bases = 2", "classifier.TrainConfig.epochs = 3"]
    gin.parse_config_files_and_bindings([programl], [*live, dead], finalize_config=False)
    entry = "codeprop.probes.graph_probe.run_graph_probe"
    assert config_checks.unused_bindings([*live, dead], entry) == [dead]
    # Statically registered configurables (pretraining's loop) and what they reference.
    gin.clear_config(clear_constants=True)
    code_lm = [
        "pretrain.train.log_every = 5",
        "optimizers.OptimizerConfig.warmup_steps = 10",
        "decoder.DecoderConfig.num_layers = 2",
    ]
    gin.parse_config_files_and_bindings(
        [str(REPO / "gin/experiments/code_lm.gin")], code_lm, finalize_config=False
    )
    assert config_checks.unused_bindings(code_lm, "codeprop.recipes.code_lm.run") == []


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.name)
def test_every_configurable_an_experiment_binds_is_one_it_calls(path):
    from codeprop import main
    from gin import config as gin_config

    gin.parse_config_files_and_bindings([str(path)], [], finalize_config=False)
    fn = main.entry_point()
    reached = config_checks.reachable(f"{fn.__module__}.{fn.__qualname__}")
    bound = {selector for _, selector in gin_config._CONFIG if selector != "gin.macro"}
    assert fn.__module__ + "." + fn.__qualname__ in reached
    assert bound - reached == set()


def test_both_entry_points_at_once_is_an_error(tmp_path):
    from codeprop import main

    files = [
        str(REPO / "gin/experiments/devmap_amd_ast_gcn.gin"),
        str(REPO / "gin/models/decoder_tiny.gin"),
    ]
    with pytest.raises(ValueError, match="exactly one of run_graph_probe, run_llm_probe, .*; they"):
        main.run(files, [], str(tmp_path), [str(REPO)])


@pytest.mark.parametrize("size", ["7b", "1b"])
def test_codeshell_model_files_match_the_presets(size):
    gin.parse_config_files_and_bindings(
        [str(REPO / "gin/runs/pretrain.gin"), str(REPO / f"gin/models/codeshell_{size}.gin")],
        ["STEPS = 1", "BATCH_SIZE = 1", "SEQ_LEN = 8"],
        finalize_config=False,
    )
    config = gin.get_bindings(pretrain.train)["model"]
    preset = decoder.codeshell_7b() if size == "7b" else decoder.codeshell_1b()
    numerics = dict(dtype="bfloat16", attention_impl="cudnn", remat=config.remat)
    assert config == preset.replace(**numerics)


def test_pretraining_runs_from_gin(tmp_path):
    from codeprop import main

    summary = main.run(
        [str(REPO / "gin/experiments/pretrain_tiny_synthetic.gin")],
        [
            "STEPS = 3",
            "SEQ_LEN = 32",
            "pretrain.train.eval_every = 3",
            "pretrain.train.eval_batches = 1",
        ],
        str(tmp_path),
        [str(REPO)],
    )
    assert summary["step"] == 3 and summary["eval_perplexity"] > 1
    assert (tmp_path / "operative_config.gin").is_file()
    assert "pretrain.train.steps = %STEPS" in (tmp_path / "config.gin").read_text()


def test_short_poj104_comparison_shortens_only_the_trained_arms():
    from codeprop import main

    gin.parse_config_files_and_bindings(
        [str(REPO / "gin/experiments/compare_poj104_short.gin")], [], finalize_config=False
    )
    bound = gin.get_bindings(comparison.run_comparison)
    assert bound["parallel"] == 2
    epochs = {}
    for name, spec in bound["arms"].items():
        files, bindings = arms_lib.split_spec(spec)
        gin.clear_config(clear_constants=True)
        gin.parse_config_files_and_bindings(
            files, bindings + bound["arm_bindings"].get(name, []), finalize_config=False
        )
        if main.entry_point() is not features_probe.run_features_probe:
            epochs[name] = gin.get_configurable(classifier.TrainConfig)().epochs
    assert epochs == {
        "ProGraML + R-GCN": 30,
        "CodeShell demo (fine-tuned)": 2,
        "AST + GCN": 60,
        "tiny decoder (from scratch)": 2,
        "ProGraML + R-GCN (random init)": 60,
        "AST + GCN (random init)": 200,
        "CodeShell demo (frozen, last token)": 10,
        "CodeShell demo (frozen, mean)": 10,
        "decoder, code LM size (from scratch)": 2,
        "code LM (fine-tuned)": 2,
        "code LM (frozen, last token)": 10,
        "code LM (frozen, mean)": 10,
    }


def test_the_sharded_llm_probe_file_puts_the_probe_on_a_mesh():
    gin.parse_config_files_and_bindings(
        [
            str(REPO / "gin/experiments/poj104_codeshell_demo.gin"),
            str(REPO / "gin/runs/llm_probe_sharded.gin"),
        ],
        ["partitioning.MeshConfig.fsdp = 8", "classifier.TrainConfig.accumulation = 4"],
        finalize_config=False,
    )
    train = gin.get_bindings(llm_probe.run_llm_probe)["train"]
    assert train.mesh == partitioning.MeshConfig(data=-1, fsdp=8, tensor=1)
    assert (train.accumulation, train.batch_size) == (4, 32)
