# make run   set up the environment, then run the default search (config/config.yaml)
# make test  set up the environment, then run the test suite
# make dry   show the plan of the default search without running it
# make bench compare the strategies on the NAS-Bench-201 table (../shared/data)
# make bench-meta  the same, cold and warm-started (+meta), each column the target
#                  in turn and the other two the knowledge (leave one task out)
# make bench-mo    several objectives and constraints on the accuracy and hardware
#                  tables joined (docs/multiobjective.md)
# make bench-bo    ls against bananas (Bayesian optimisation), 100 queries, each
#                  column, and bananas on the operations relabelled (docs/benchmarks.md)
# make bench-zc    zero-cost proxies: synflow of every NAS-Bench-201 cell against its
#                  accuracies, screened strategies on the table, every proxy against
#                  real training on digits, rea screened on digits (docs/zero_cost.md)
# make bench-seg   segmentation on the embedded canvases: random backbones' spread
#                  against seed noise, one core's time a training, rea against random
#                  at the example config's budget, 3 seeds (docs/segmentation.md)
# make bench-train samples per second of one training: the train evaluator against a
#                  bare PyTorch loop and the previous (DataLoader) path, on digits and
#                  CIFAR-shaped data on the CPU, and on the GPU where there is one (docs/gpu.md)
# make bench-overhead  the default search (final: left out) through snakemake --cores 1
#                  against the same work in one process, 3 pairs: seconds, ratio and
#                  the median per-job overhead (docs/cluster.md)
# make bench-plan  seconds and peak memory of `snakemake -n` of one run of 100, 200 and
#                  1,000 generations x 50 candidates (train and table evaluators), planned
#                  in blocks and in one block (docs/planning.md)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CORES  ?= 2
ENV    := $(VENV)/.installed

# The NAS-Bench-201 accuracy table: read in place, never copied into the project.
TABLE      ?= ../shared/data/nb201_accuracy.csv
STRATEGIES ?= random,ga,rea,reinforce,ls
SEEDS      ?= 100
BUDGET     ?= 300
META_STRATEGIES ?= random,ga,rea,ls,reinforce,random+meta,ga+meta,rea+meta,ls+meta,reinforce+meta
META_BUDGET     ?= 50
COLUMNS    := CIFAR10 CIFAR100 ImageNet
HARDWARE   ?= ../shared/data/nb201_hardware.csv
MO_STRATEGIES ?= random,nsga2,rea,ga,reinforce,ls
MO_BUDGET     ?= 150
CONSTRAINED_BUDGET ?= 100
BO_STRATEGIES ?= ls,bananas
ZC_CELLS      ?= 0
ZC_STRATEGIES ?= random,random+screen,rea,rea+screen,ga,ga+screen
ZC_SCREENS    ?= rea,rea+zc_params,rea+zc_synflow
BO_BUDGET     ?= 100
# bench-overhead: OVERHEAD_ARGS=--small for 2 generations of 4 tiny trainings (a minute).
OVERHEAD_ARGS ?=
# NAS-Bench-201's operations in another order: every genome index means another one.
RELABELLED    := avg_pool_3x3,nor_conv_3x3,none,skip_connect,nor_conv_1x1

.PHONY: run test dry bench bench-meta bench-mo bench-bo bench-zc bench-seg bench-train bench-overhead bench-plan clean

# The pinned packages, then the project itself, editable: `nas` and the
# `snakenas` command work from any folder and run this checkout's code.
# editable_mode=compat: a plain path in a .pth file. The default import hook
# costs every Python process of the environment 40 ms at start (every job of a
# run starts one: docs/cluster.md, "Local overhead").
$(ENV): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . \
	  --config-settings editable_mode=compat
	touch $@

run: $(ENV)
	$(BIN)/snakemake --cores $(CORES)

dry: $(ENV)
	$(BIN)/snakemake --cores $(CORES) -n

bench: $(ENV)
	@test -f $(TABLE) || { echo "bench: $(TABLE) not found; set TABLE=path/to/nb201_accuracy.csv"; exit 2; }
	for m in CIFAR10 CIFAR100 ImageNet; do \
	  $(BIN)/python -m nas bench --table $(TABLE) --metric $${m}TestAccuracy200Epochs \
	    --strategies $(STRATEGIES) --seeds $(SEEDS) --budget $(BUDGET) --out results/bench/$$m || exit 1; \
	done

bench-meta: $(ENV)
	@test -f $(TABLE) || { echo "bench-meta: $(TABLE) not found; set TABLE=path/to/nb201_accuracy.csv"; exit 2; }
	for m in $(COLUMNS); do \
	  others=$$(for o in $(COLUMNS); do [ $$o = $$m ] || printf '%sTestAccuracy200Epochs,' $$o; done); \
	  $(BIN)/python -m nas bench --table $(TABLE) --metric $${m}TestAccuracy200Epochs \
	    --meta-from $${others%,} --task-features config/nb201_tasks.yaml \
	    --strategies $(META_STRATEGIES) --seeds $(SEEDS) --budget $(META_BUDGET) --out results/bench-meta/$$m || exit 1; \
	done

# CIFAR-10 test error against params (known without a query) and against the
# Eyeriss latency (measured: a query); then one accuracy under a params bound
# (cheap) and one under a latency bound (measured).
bench-bo: $(ENV)
	@test -f $(TABLE) || { echo "bench-bo: $(TABLE) not found; set TABLE=path/to/nb201_accuracy.csv"; exit 2; }
	@for m in $(COLUMNS); do \
	  $(BIN)/python -m nas bench --table $(TABLE) --metric $${m}TestAccuracy200Epochs \
	    --strategies $(BO_STRATEGIES) --seeds $(SEEDS) --budget $(BO_BUDGET) --out results/bench-bo/$$m || exit 1; \
	done
	$(BIN)/python -m nas bench --table $(TABLE) --metric CIFAR10TestAccuracy200Epochs --ops $(RELABELLED) \
	  --strategies bananas --seeds $(SEEDS) --budget $(BO_BUDGET) --out results/bench-bo/CIFAR10-relabelled

# ZC_CELLS=0: all 15,625 cells (about 30 min on one core); ZC_CELLS=3000 a fixed sample.
bench-zc: $(ENV)
	@test -f $(TABLE) || { echo "bench-zc: $(TABLE) not found; set TABLE=path/to/nb201_accuracy.csv"; exit 2; }
	$(BIN)/python scripts/zc_nb201.py --table $(TABLE) --cells $(ZC_CELLS) --out results/bench-zc
	@for m in $(COLUMNS); do \
	  $(BIN)/python -m nas bench --table $(TABLE) --metric $${m}TestAccuracy200Epochs \
	    --strategies $(ZC_STRATEGIES) --seeds $(SEEDS) --budget $(BO_BUDGET) --out results/bench-zc/$$m || exit 1; \
	done
	$(BIN)/python scripts/zc_digits.py --cells 64 --repeats 2 --out results/zc-digits
	$(BIN)/python scripts/digits_strategies.py --strategies $(ZC_SCREENS) --seeds 3 --workdir results/digits-screen

# About 40 minutes on 2 cores; needs no data outside the project.
bench-seg: $(ENV)
	$(BIN)/python scripts/seg_spread.py --backbones 16 --seeds 2 --workers 2 --out results/bench-seg/spread.tsv
	$(BIN)/python scripts/seg_spread.py --backbones 8 --seeds 1 --workers 1 --out results/bench-seg/one_core.tsv
	$(BIN)/python scripts/seg_search.py --seeds 3 --workers 2 --out results/bench-seg/search.tsv

bench-train: $(ENV)
	$(BIN)/python scripts/train_speed.py --repeats 5 --warm --out results/bench-train/speed.tsv

# About 6 minutes; needs no data outside the project.
bench-overhead: $(ENV)
	$(BIN)/python scripts/workflow_overhead.py --pairs 3 $(OVERHEAD_ARGS)

bench-plan: $(ENV)
	@test -f $(TABLE) || { echo "bench-plan: $(TABLE) not found; set TABLE=path/to/nb201_accuracy.csv"; exit 2; }
	$(BIN)/python scripts/plan_scale.py --table $(TABLE)
	$(BIN)/python scripts/plan_scale.py --table $(TABLE) --one-block --timeout 600

bench-mo: $(ENV)
	@for t in $(TABLE) $(HARDWARE); do test -f $$t || { echo "bench-mo: $$t not found; set TABLE= and HARDWARE="; exit 2; }; done
	$(BIN)/python -m nas bench --table $(TABLE) --table $(HARDWARE) \
	  --objectives CIFAR10TestAccuracy200Epochs:max,CIFAR10ParamsM:min --cheap CIFAR10ParamsM \
	  --strategies $(MO_STRATEGIES) --seeds $(SEEDS) --budget $(MO_BUDGET) --out results/bench-mo/params
	$(BIN)/python -m nas bench --table $(TABLE) --table $(HARDWARE) \
	  --objectives CIFAR10TestAccuracy200Epochs:max,CIFAR10EyerissLatencyMs:min \
	  --strategies $(MO_STRATEGIES) --seeds $(SEEDS) --budget $(MO_BUDGET) --out results/bench-mo/eyeriss
	$(BIN)/python -m nas bench --table $(TABLE) --table $(HARDWARE) \
	  --metric CIFAR10TestAccuracy200Epochs --constraint CIFAR10ParamsM:max:0.4 --cheap CIFAR10ParamsM \
	  --strategies $(MO_STRATEGIES) --seeds $(SEEDS) --budget $(CONSTRAINED_BUDGET) --out results/bench-mo/cifar10-params
	$(BIN)/python -m nas bench --table $(TABLE) --table $(HARDWARE) \
	  --metric CIFAR100TestAccuracy200Epochs --constraint CIFAR10EyerissLatencyMs:max:5 \
	  --strategies $(MO_STRATEGIES) --seeds $(SEEDS) --budget $(CONSTRAINED_BUDGET) --out results/bench-mo/cifar100-eyeriss

# The suite on CORES workers, a test file per worker (their module fixtures run
# once); then the real-SLURM test on its own, since it starts and stops a cluster.
test: $(ENV)
	$(BIN)/python -m pytest -q -n $(CORES) --dist loadfile tests --ignore=tests/test_slurm.py
	$(BIN)/python -m pytest -q tests/test_slurm.py

clean:
	rm -rf results .snakemake
