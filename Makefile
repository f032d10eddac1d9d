# The two entry points the README promises: `make demo` and `make test`. Both set up from nothing.
.PHONY: setup demo test pytest infra-checks bench-cpu

setup:
	./scripts/setup.sh

demo: setup
	.venv/bin/headshots demo

# The test command of the README and of .ci/run.
test: setup
	.venv/bin/lint-imports
	.venv/bin/python -m pytest -q -n 2 --dist loadfile
	./scripts/terraform-checks.sh

bench-cpu: setup
	for b in bench/validate.py bench/faces.py bench/train.py bench/generate.py bench/generate_io.py bench/gpu_job.py bench/compile_unet.py bench/throughput.py bench/faults.py bench/capacity.py bench/watermark.py; do \
		.venv/bin/python $$b || exit 1; done
