# The two commands of the README. Each creates or refreshes .venv, installs what it needs, then runs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
JOBS ?= 2

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# tests/tools opens kernel reports in a headless Chromium (Debian's package): installed here when
# missing and we are root; otherwise that test fails saying how to install it. The same for
# clang-19 / lld-19 / llvm-19, which compile and disassemble HIP kernels for AMD GPUs (tests/hip)
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[test,cuda]'
	@if ! command -v chromium >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } || \
		echo "note: could not install chromium (apt-get install chromium); the kernel-report browser test will fail"; \
	fi
	@if ! command -v clang-19 >/dev/null 2>&1 || ! command -v ld.lld-19 >/dev/null 2>&1 || ! command -v llvm-objdump-19 >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			export DEBIAN_FRONTEND=noninteractive; \
			apt-get install -y -qq clang-19 lld-19 llvm-19 >/dev/null 2>&1 || \
			{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq clang-19 lld-19 llvm-19 >/dev/null 2>&1; } || \
			echo "note: could not install clang-19, lld-19 and llvm-19; the HIP (gfx942) tests will fail"; \
		else \
			echo "note: the HIP (gfx942) tests need clang-19, lld-19 and llvm-19 (apt-get install clang-19 lld-19 llvm-19)"; \
		fi; \
	fi
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

test: $(STAMP)
	rm -rf build/test-cache
	TILEWISE_CACHE_DIR=$(CURDIR)/build/test-cache $(BIN)/python -m pytest -n $(JOBS) -q tests
	$(BIN)/ruff check tilewise tests examples benchmarks tools

lint: $(STAMP)
	$(BIN)/ruff check tilewise tests examples benchmarks tools

bench: $(STAMP)
	$(BIN)/python benchmarks/gemm.py

clean:
	rm -rf build $(VENV) .pytest_cache
