# codeprop: set-up, the main job and the tests. Every target creates .venv/ when missing.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Raw benchmark data: $CODEPROP_DATA_DIR, else the shared datasets beside this checkout.
export CODEPROP_DATA_DIR ?= $(abspath ../shared/datasets)
WORKDIR ?= workdir

.PHONY: quickstart test lint format bench clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,parity]'
	touch $@

$(BIN)/.bench-installed: $(BIN)/.installed
	$(BIN)/pip install --quiet -e '.[test,parity,bench]'
	touch $@

# The main job: AST + GCN on devmap-amd and devmap-nvidia, stratified 10-fold CV.
quickstart: $(BIN)/.installed
	$(BIN)/python -m codeprop.main --gin_file=gin/experiments/devmap_amd_ast_gcn.gin \
		--workdir=$(WORKDIR)/devmap_amd_ast_gcn
	$(BIN)/python -m codeprop.main --gin_file=gin/experiments/devmap_nvidia_ast_gcn.gin \
		--workdir=$(WORKDIR)/devmap_nvidia_ast_gcn

# Lint, format check and the test suite (long runs marked `slow` are left out).
test: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --durations=15

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(BIN)/.bench-installed
	$(BIN)/python benchmarks/ast_graph_building.py
	$(BIN)/python benchmarks/gcn_training.py --benchmark devmap/amd
	$(BIN)/python benchmarks/programl_graph_building.py
	$(BIN)/python benchmarks/poj104_compile.py --sample 2000 --workers 1
	$(BIN)/python benchmarks/rgcn_training.py --benchmark devmap/amd
	$(BIN)/python benchmarks/decoder_training.py
	$(BIN)/python benchmarks/near_dedup.py
	$(BIN)/python benchmarks/embedding_analysis.py

clean:
	rm -rf $(VENV) $(WORKDIR) .pytest_cache .ruff_cache
