# geo_med_sr: `make demo` and `make test` create .venv and install everything they need.
# TORCH selects the PyTorch requirement: CI pins the CPU build (see .ci/run); GPU users can
# pass e.g. TORCH="torch==2.13.0" with their CUDA index configured in pip.
PYTHON ?= python3
TORCH ?= torch
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.geo_med_sr-installed
PYTEST_ARGS ?=

SHARED ?= ../shared/data
SAT_TRAIN = $(sort $(wildcard $(SHARED)/train/remote/*/*.tif))
SAT_VAL = $(SHARED)/geotiff/l8_B4.tif $(SHARED)/geotiff/LC08_232066_20190727.tif
MRI_TRAIN = $(sort $(wildcard $(SHARED)/train/mri/*.nii.gz))
MRI_VAL = $(SHARED)/mri/T2w_1x1x2mm.nii.gz
GMS := $(VENV)/bin/geo-med-sr
# Scores on the validation files (benchmarks/bench_quality.py) that the model cards quote.
QUALITY = benchmarks/results/quality

.PHONY: demo test test-fast lint typecheck install clean bench figures qgis-plugin weights weights-sat-x2 weights-sat-x2-fast weights-sat-x4 weights-mri3d-x2 weights-mri-throughplane-x2 weights-mri-throughplane-x3 weights-mri-throughplane-x4 cards

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet "$(TORCH)"
	$(PIP) install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/geo-med-sr demo --out demo_output

# the QGIS Processing provider as an installable zip: dist/geo_med_sr_qgis-<version>.zip (README "In QGIS")
qgis-plugin: $(STAMP)
	$(VENV)/bin/python integrations/qgis/build.py

# ruff (configured in pyproject.toml) on the whole tree and the type checker on the engine's
# contracts, then the test suite
lint: $(STAMP) typecheck
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# mypy (configured in pyproject.toml) on TYPED. adapters/ is installed as geo_med_sr.adapters, a
# mapping mypy cannot follow, so it reads a tree of links laid out as the installed package.
TYPED = geo_med_sr.inference.protocols geo_med_sr.inference.driver geo_med_sr.upscale.registry geo_med_sr.upscale.methods geo_med_sr.sharpening.registry geo_med_sr.sharpening.plan geo_med_sr.adapters.base
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/geo_med_sr
	for f in geo_med_sr/*; do ln -s ../../../$$f build/typecheck/geo_med_sr/; done
	ln -s ../../../adapters build/typecheck/geo_med_sr/adapters
	ln -s ../../../configs build/typecheck/geo_med_sr/configs
	cd build/typecheck && ../../$(PY) -m mypy --config-file ../../pyproject.toml $(addprefix -m ,$(TYPED))

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

# the suite without the tests marked slow (processes, servers, whole jobs): a quick check while editing
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# The README's hand-off and batch figures: made by notebooks/03_batch_and_workflows.ipynb.
figures: $(STAMP)
	GEO_MED_SR_FIGURES=$(CURDIR)/docs/figures $(VENV)/bin/jupyter-execute notebooks/03_batch_and_workflows.ipynb

# Bundled weights: trained by the project's own train command on $(SHARED)/train only
# (validation on $(SHARED)/geotiff), each with a model card. Needs the shared data folder.
weights: weights-sat-x2 weights-sat-x2-fast weights-sat-x4 weights-mri3d-x2 weights-mri-throughplane-x2 weights-mri-throughplane-x3 weights-mri-throughplane-x4
	rm -f geo_med_sr/models/weights/*.train.safetensors

CARD = $(PY) -m geo_med_sr.models.card
SAT_FAST_CMD = geo-med-sr train --config configs/train/sat_x2_fast.yaml --data ../shared/data/train/remote/*/*.tif --val ../shared/data/geotiff/l8_B4.tif ../shared/data/geotiff/LC08_232066_20190727.tif --out geo_med_sr/models/weights/sat_edsr_x2_fast.safetensors
SAT_CMD = geo-med-sr train --config configs/train/sat_$*.yaml --data ../shared/data/train/remote/*/*.tif --val ../shared/data/geotiff/l8_B4.tif ../shared/data/geotiff/LC08_232066_20190727.tif --out geo_med_sr/models/weights/sat_edsr_$*.safetensors
MRI3D_CMD = geo-med-sr train --config configs/train/mri3d_x2.yaml --data ../shared/data/train/mri/*.nii.gz --val ../shared/data/mri/T2w_1x1x2mm.nii.gz --out geo_med_sr/models/weights/mri_edsr3d_x2.safetensors
TP_CMD = geo-med-sr train --config configs/train/mri_throughplane_$*.yaml --data ../shared/data/train/mri/*.nii.gz --out geo_med_sr/models/weights/mri_throughplane_$*.safetensors

weights-sat-x2 weights-sat-x4: weights-sat-%: $(STAMP)
	$(GMS) train --config configs/train/sat_$*.yaml --data $(SAT_TRAIN) --val $(SAT_VAL) --out geo_med_sr/models/weights/sat_edsr_$*.safetensors --overwrite
	$(MAKE) card-sat-$*

weights-sat-x2-fast: $(STAMP)
	$(GMS) train --config configs/train/sat_x2_fast.yaml --data $(SAT_TRAIN) --val $(SAT_VAL) --out geo_med_sr/models/weights/sat_edsr_x2_fast.safetensors --overwrite
	$(MAKE) card-sat-x2-fast

weights-mri3d-x2: $(STAMP)
	$(GMS) train --config configs/train/mri3d_x2.yaml --data $(MRI_TRAIN) --val $(MRI_VAL) --out geo_med_sr/models/weights/mri_edsr3d_x2.safetensors --overwrite
	$(MAKE) card-mri3d-x2

weights-mri-throughplane-x2 weights-mri-throughplane-x3 weights-mri-throughplane-x4: weights-mri-throughplane-%: $(STAMP)
	$(GMS) train --config configs/train/mri_throughplane_$*.yaml --data $(MRI_TRAIN) --out geo_med_sr/models/weights/mri_throughplane_$*.safetensors --overwrite
	$(MAKE) card-mri-throughplane-$*

# Model cards only (no training): quote the scores in $(QUALITY) (benchmarks/bench_quality.py).
cards: card-sat-x2 card-sat-x2-fast card-sat-x4 card-mri3d-x2 card-mri-throughplane-x2 card-mri-throughplane-x3 card-mri-throughplane-x4

card-sat-x2 card-sat-x4: card-sat-%: $(STAMP)
	$(CARD) geo_med_sr/models/weights/sat_edsr_$*.safetensors --evaluation $(wildcard $(QUALITY)/sat-$*__*.json) --command "make weights-sat-$* ($(SAT_CMD))"

card-sat-x2-fast: $(STAMP)
	$(CARD) geo_med_sr/models/weights/sat_edsr_x2_fast.safetensors --evaluation $(wildcard $(QUALITY)/sat-x2-fast__*.json) --command "make weights-sat-x2-fast ($(SAT_FAST_CMD))"

card-mri3d-x2: $(STAMP)
	$(CARD) geo_med_sr/models/weights/mri_edsr3d_x2.safetensors --evaluation $(wildcard $(QUALITY)/mri-x2__*.json) --command "make weights-mri3d-x2 ($(MRI3D_CMD))"

card-mri-throughplane-x2 card-mri-throughplane-x3 card-mri-throughplane-x4: card-mri-throughplane-%: $(STAMP)
	$(CARD) geo_med_sr/models/weights/mri_throughplane_$*.safetensors --evaluation $(wildcard $(QUALITY)/mri-tp-$*__*.json) --command "make weights-mri-throughplane-$* ($(TP_CMD))"

clean:
	rm -rf $(VENV) demo_output .pytest_cache

# Bundled guided sharpening weights (issue 14): trained by `geo-med-sr train` with task: sharpen configs.
S2_SCENES = $(SHARED)/s2/S2B_MSIL1C_20171022_T49JGM $(SHARED)/s2/S2A_29RKH_20200219_0_L2A/S2A_29RKH_20200219_0_L2A.json
FUSEBOX = $(foreach ms,$(wildcard $(SHARED)/pansharpen/landsat7_fusebox/*_ms.tif),$(ms)::$(ms:_ms.tif=_pan.tif))

weights-sharpen: weights-s2-guided-x2 weights-s2-guided-x6 weights-pan-guided-x2 weights-pan-guided-x4

weights-s2-guided-x2 weights-s2-guided-x6: weights-s2-guided-%: $(STAMP)
	$(GMS) train --config configs/train/s2_guided_$*.yaml --data $(S2_SCENES) --out geo_med_sr/models/weights/s2_guided_$*.safetensors --overwrite
	$(PY) -m geo_med_sr.sharpening.train card geo_med_sr/models/weights/s2_guided_$*.safetensors

weights-pan-guided-x2 weights-pan-guided-x4: weights-pan-guided-%: $(STAMP)
	$(GMS) train --config configs/train/pan_guided_$*.yaml --data $(FUSEBOX) --out geo_med_sr/models/weights/pan_guided_$*.safetensors --overwrite
	$(PY) -m geo_med_sr.sharpening.train card geo_med_sr/models/weights/pan_guided_$*.safetensors
