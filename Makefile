# The two entry points the README promises: `make demo` and `make test`. Both set up from nothing.
.PHONY: setup demo test bench-cpu

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/headshots demo

test: setup
	.venv/bin/python -m pytest -q

bench-cpu: setup
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done
