# whisperq: `make demo` and `make test` do all the set-up on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-stamp
CHECKOV := checkov==3.3.30
BROWSER_STAMP := tests/browser/node_modules/.installed-stamp
PYTEST := $(BIN)/python -m pytest
# torch must be the CPU build (it lies on these machines as a wheel): install it before anything
# that depends on it, or pip fetches a multi-GB CUDA build.
TORCH := torch==2.13.0
OPENAI_WHISPER := openai-whisper==20250625
# The speaker encoder's weights ship in Resemblyzer's wheel; its code (librosa, webrtcvad) is never imported,
# so it goes in without its dependencies (transcriber/diarizers/voice_encoder.py reads the weights).
RESEMBLYZER := resemblyzer==0.1.4

.PHONY: help venv browser demo test test-unit test-integration test-e2e lint lint-infra deploy examples \
	benchmark-diarization clean

help:
	@echo "make demo   - create .venv, start the local twin, transcribe examples/meeting.wav, stop"
	@echo "make test   - create .venv and run every test tier (unit, integration, e2e) and the infra lint"
	@echo "make test-unit | test-integration | test-e2e | lint | lint-infra"
	@echo "make deploy - sam build + sam deploy (guided the first time) with queue_config as parameters"

# openai-whisper goes last, with --no-deps: its metadata pulls triton (GPU-only, hundreds of MB) on
# Linux x86_64, and its CPU requirements come with this package's `openai-whisper` extra. Installed
# before the others, pip's resolver would print the triton it lacks as an error on every fresh install.
$(STAMP): pyproject.toml requirements/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/constraints.txt $(TORCH)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements/constraints.txt \
		-e '.[local,openai-whisper,eval,dev]'
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(OPENAI_WHISPER) $(RESEMBLYZER)
	touch $(STAMP)

venv: $(STAMP)

demo: venv
	$(BIN)/whisperq demo examples/meeting.wav

test: venv lint lint-infra browser
	$(PYTEST) tests

test-unit: venv
	$(PYTEST) tests/unit

test-integration: venv
	$(PYTEST) tests/integration

test-e2e: venv browser
	$(PYTEST) tests/e2e

# The page's browser test: Debian's chromium and axe-core (scripts/install_browser.sh).
$(BROWSER_STAMP): tests/browser/package.json tests/browser/package-lock.json scripts/install_browser.sh
	bash scripts/install_browser.sh
	touch $(BROWSER_STAMP)

browser: $(BROWSER_STAMP)

lint: venv
	$(BIN)/ruff check src tests
	$(BIN)/mypy

# checkov lives in its own venv: its pins would fight the project's.
$(CHECKOV_STAMP):
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check $(CHECKOV)
	touch $(CHECKOV_STAMP)

lint-infra: venv $(CHECKOV_STAMP)
	bash scripts/lint_infra.sh infra/template.yaml

# Needs the AWS SAM CLI, Docker (the transcriber is a container image) and AWS credentials. The first
# run is guided and writes samconfig.toml; later runs reuse it. queue_config travels as parameters.
deploy: venv
	@command -v sam >/dev/null || { echo "make deploy needs the AWS SAM CLI (pip install aws-sam-cli) and Docker"; exit 2; }
	sam build --template-file infra/template.yaml
	if [ -f samconfig.toml ]; then \
		sam deploy --parameter-overrides $$($(BIN)/whisperq infra params); \
	else \
		sam deploy --guided --capabilities CAPABILITY_IAM --resolve-s3 --resolve-image-repos \
			--parameter-overrides $$($(BIN)/whisperq infra params); \
	fi

examples:
	bash scripts/make_examples.sh

# The diarization benchmark (docs/diarization.md): pyannote.metrics for the error rate, espeak-ng and sox
# for the dialogues (apt-get install espeak-ng sox); results to docs/benchmarks/diarization.json.
benchmark-diarization: venv
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python benchmarks/diarization.py --out docs/benchmarks/diarization.json

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) tests/browser/node_modules .pytest_cache .ruff_cache src/*.egg-info .aws-sam
