# kerasrecipe — every target installs what it needs into .venv first.
PY ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
BACKENDS ?= tensorflow torch jax
PYTEST_ARGS ?=

.PHONY: venv install build test bench bench-diagnosis clean

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(PIP) install -q -U pip setuptools wheel
	# torch: the CPU build (a plain 'torch' would pull a multi-GB CUDA build)
	$(PIP) install -q "torch==2.13.0"
	$(PIP) install -q pybind11 setuptools wheel
	$(PIP) install -q --no-build-isolation -e ".[all,dev]"
	touch $@

venv install: $(VENV)/.installed

# Rebuild the extension in place (after editing csrc/).
build: $(VENV)/.installed
	$(VPY) setup.py -q build_ext --inplace

test: $(VENV)/.installed build
	@set -e; for b in $(BACKENDS); do \
	  echo "=== KERAS_BACKEND=$$b"; \
	  KERAS_BACKEND=$$b MPLBACKEND=Agg $(VPY) -m pytest -q -p no:cacheprovider $(PYTEST_ARGS) tests; \
	done

bench: $(VENV)/.installed build
	MPLBACKEND=Agg $(VPY) benchmarks/bench_kernels.py
	MPLBACKEND=Agg KERAS_BACKEND=torch $(VPY) benchmarks/bench_clipping.py
	MPLBACKEND=Agg $(VPY) benchmarks/bench_recipe.py

# The diagnosis accuracy benchmark (25 faulty programs and their fixed twins; long).
bench-diagnosis: $(VENV)/.installed build
	MPLBACKEND=Agg $(VPY) benchmarks/bench_diagnosis.py --backend $(DEMO_BACKEND)

clean:
	rm -rf build *.egg-info kerasrecipe/*.so .pytest_cache

# The main job: the whole recipe on the digits images, with an HTML report (kerasrecipe/demo.py).
DEMO_BACKEND ?= jax
DEMO_ARGS ?=
.PHONY: demo
demo: $(VENV)/.installed
	MPLBACKEND=Agg $(VENV)/bin/kerasrecipe demo --backend $(DEMO_BACKEND) $(DEMO_ARGS)
