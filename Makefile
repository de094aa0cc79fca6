# One command each, on a fresh Debian or Ubuntu machine:
#   make run   set up, migrate, load the demo community, start broker + web + worker
#   make test  set up, lint, check imports, run the tests on SQLite, on PostgreSQL, and on
#              SQLite again under faketime, years ahead
#
# Set-up installs missing system packages with apt-get (through sudo when not root)
# and builds .venv; pip runs again only when setup.cfg or pyproject.toml change.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := run

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export FLASK_APP := server

# libzbar0: QR decoding (pyzbar); mosquitto and redis-server: the broker and the rate-limit
# store `make run` starts itself (the Debian packages also enable system services: nothing
# here needs them, and when one holds port 1883 the launcher takes a free port; Redis
# always gets a free port); libopenblas-dev, cmake and a compiler:
# dlib is built from source; python3-dev, python3-venv: the virtual environment.
RUN_PACKAGES ?= libzbar0 mosquitto redis-server libopenblas-dev cmake build-essential python3-dev python3-venv
# Browser tests drive Chromium (with a CJK font, so screenshots show characters);
# PostgreSQL's server binaries run a throwaway cluster; faketime runs the suite years ahead.
TEST_PACKAGES ?= chromium chromium-driver fonts-noto-cjk postgresql faketime
# The third run's clock: years ahead, the last seconds before a leap day. A test that mixes
# the real date with fixed instants fails here long before the calendar gets there.
# Only the wall clock is moved (DONT_FAKE_MONOTONIC): timeouts and waits keep real time,
# and tests/support/faketime/sitecustomize.py (on PYTHONPATH) makes time.sleep work there.
# The daemons the tests start (Mosquitto, PostgreSQL, Chromium) run on the real clock; the
# browser's pages get the faked time from Playwright's clock (tests/support/clock.py).
FAKETIME_AT ?= 2029-02-28 23:59:30

.PHONY: run test system-packages

run: PACKAGES = $(RUN_PACKAGES)
run: system-packages $(STAMP)
	$(BIN)/flask db upgrade
	$(BIN)/flask seed
	$(BIN)/python -m server.launcher

test: PACKAGES = $(RUN_PACKAGES) $(TEST_PACKAGES)
test: system-packages $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	if [ -f tests/fetch_test_data.py ]; then $(BIN)/python -m tests.fetch_test_data; fi
	GK_TEST_DATABASE=sqlite $(BIN)/python -m pytest
	GK_TEST_DATABASE=postgresql $(BIN)/python -m pytest
	faketime '$(FAKETIME_AT)' env DONT_FAKE_MONOTONIC=1 \
	  PYTHONPATH=$(CURDIR)/tests/support/faketime GK_TEST_DATABASE=sqlite $(BIN)/python -m pytest

# Installs only what dpkg says is missing; a machine that has everything does nothing.
system-packages:
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "Not a Debian system: make sure these are installed: $(PACKAGES)"; exit 0; fi; \
	missing=""; \
	for package in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' "$$package" 2>/dev/null | grep -q '^install ok installed$$' \
	    || missing="$$missing $$package"; \
	done; \
	[ -z "$$missing" ] && exit 0; \
	command="apt-get update && apt-get install -y$$missing"; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=""; \
	elif command -v sudo >/dev/null; then sudo="sudo"; \
	else echo "Missing system packages:$$missing. As root, run:"; \
	  echo "  DEBIAN_FRONTEND=noninteractive $$command"; exit 1; fi; \
	echo "Installing system packages:$$missing"; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y$$missing

$(STAMP): setup.cfg pyproject.toml | system-packages
	[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	# setuptools 82 dropped pkg_resources, which face_recognition_models imports at run time.
	$(BIN)/python -m pip install -q --upgrade pip wheel "setuptools<82"
	@echo "Installing the project; dlib builds from source, about 7 minutes the first time."
	$(BIN)/python -m pip install --progress-bar off -e ".[dev]"
	touch $@
