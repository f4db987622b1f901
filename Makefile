# make run   set up the environment, then run the default search (config/config.yaml)
# make test  set up the environment, then run the test suite
# make dry   show the plan of the default search without running it

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
ENV    := $(VENV)/.installed

.PHONY: run test dry clean

$(ENV): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

run: $(ENV)
	$(BIN)/snakemake --cores $(CORES)

dry: $(ENV)
	$(BIN)/snakemake --cores $(CORES) -n

test: $(ENV)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf results .snakemake
