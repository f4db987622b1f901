"""`python -m nas <step>`: every workflow step, runnable by hand.

The dispatcher imports what a command needs inside its branch, so that a
command pays only for its own imports (`train --shared-trainer` hands its job
to a server without importing torch; `status` stays light). A step a server
takes is handed on before anything else is imported, the parser included
(nas/handoff.py): every job of a run starts here.
"""

from __future__ import annotations

import sys

from nas import handoff

TYPE_CHECKING = False  # typing's own import would be 10 ms of every job
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def _known_errors() -> tuple[type[Exception], ...]:
    from nas.config import ConfigError
    from nas.evaluators import EvaluatorError
    from nas.final import FinalError
    from nas.export import ExportError
    from nas.io import ArtefactError
    from nas.objectives import ObjectiveError
    from nas.predict import PredictError
    from nas.spaces import SpaceError
    from nas.strategies import StrategyError
    from nas.tasks import TaskError

    return (ConfigError, ArtefactError, EvaluatorError, ObjectiveError, SpaceError, StrategyError, TaskError,
            ExportError, FinalError, PredictError)


def main(argv: Sequence[str] | None = None) -> int:
    # The same commands as `snakenas ...` (the console script) and `python -m nas ...`.
    argv = list(sys.argv[1:] if argv is None else argv)
    served = handoff.served(argv)
    if served is not None:
        return served
    import argparse
    from pathlib import Path

    from nas import layout

    DEFAULT_CONFIG = layout.DEFAULT_CONFIG
    prog = "snakenas" if Path(sys.argv[0]).name == "snakenas" else "python -m nas"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a config and list its runs")
    p.add_argument("config", nargs="?", default=None, help=f"default: {DEFAULT_CONFIG} in this folder")

    p = sub.add_parser("propose", help="write the candidate specs of one generation")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("screen", help="score a generation's proposals by the run's proxy, keep its candidates")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("train", help="train (or look up) one candidate spec")
    p.add_argument("spec")
    p.add_argument("--out", required=True, help="folder for metrics.json and epochs.csv")
    p.add_argument("--checkpoint", action="store_true",
                   help="keep a checkpoint after each epoch in --out; resume from one found there")
    p.add_argument("--shared-trainer", type=int, metavar="OWNER_PID",
                   help="fork from the training server of this snakemake process (started if needed)")

    p = sub.add_parser("evaluate", help="evaluate every candidate of one generation in this one job")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("trainer-server", help="(started by train --shared-trainer) serve training jobs")
    p.add_argument("socket")
    p.add_argument("--owner", type=int, help="pid whose end ends the server (default: only idleness)")
    p.add_argument("--light", action="store_true", help="serve the light steps: import no torch")

    p = sub.add_parser("aggregate", help="table and strategy state of one generation")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("report", help="history.tsv, summary.json, best.yaml, progress.png")
    p.add_argument("run_dir")
    p.add_argument("--generations", type=int, required=True)

    p = sub.add_parser("bench", help="compare strategies on a tabular benchmark, many seeds, in process")
    p.add_argument("--table", required=True, action="append",
                   help="CSV/TSV with one row per architecture; repeat it to join tables on --arch-column")
    p.add_argument("--metric", default=None, help="the column to maximise (one objective)")
    p.add_argument("--objectives", default="", help="COL:max,COL:min,... (several objectives: hypervolume)")
    p.add_argument("--constraint", action="append", default=[], metavar="COL:max|min:VALUE",
                   help="a hard bound on a column (repeat it)")
    p.add_argument("--cheap", default="", help="comma-separated columns known without a query")
    p.add_argument("--arch-column", default="ArchitectureString")
    p.add_argument("--strategies", default="random,ga,rea", help="comma-separated runs of --config")
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--budget", type=int, default=300, help="distinct queries per search")
    p.add_argument("--out", required=True)
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--config", default=None, help="strategies' settings (default config/bench.yaml)")
    p.add_argument("--meta-from", default="", help="comma-separated columns: the knowledge of X+meta strategies")
    p.add_argument("--task-features", default=None, help="YAML: column -> its task features")
    p.add_argument("--ops", default="", help="comma-separated: the space's ops in this order (a relabelling)")

    p = sub.add_parser("meta", help="meta-learning: task features, knowledge base, meta-model")
    meta = p.add_subparsers(dest="meta_command", required=True)
    m = meta.add_parser("task", help="write results/RUN/task.json (the run's task id and features)")
    m.add_argument("run_dir")
    m = meta.add_parser("build", help="knowledge base and meta-model from finished runs and tables")
    m.add_argument("--out", default=layout.META_DIR)
    m.add_argument("--runs", nargs="*", default=None, help="run folders (default: every finished run under --results)")
    m.add_argument("--results", default=layout.RESULTS)
    m.add_argument("--config", default=None, help="a config whose `meta:` section names tables (and space)")
    m.add_argument("--meta", default=None, help="a `meta:` section itself, as YAML or JSON (instead of --config)")
    m.add_argument("--space", default=None, help="YAML mapping of the space the predictor encodes")
    m = meta.add_parser("rank", help="the meta-model's best architectures for a task")
    m.add_argument("model", help="folder of the meta-model")
    m.add_argument("--features", default="{}", help="YAML mapping: the task's features")
    m.add_argument("--top", type=int, default=10)

    p = sub.add_parser("final", help="the final model: re-train the top candidates, choose, export (rules/final.smk)")
    final = p.add_subparsers(dest="final_command", required=True)
    for name, text in (("propose", "write final/candidates/: the run's top candidates with the final recipe"),
                       ("table", "write final/final.tsv from the re-trainings, the winner marked"),
                       ("model", "train the winner for export; model.pt, model.pt2, model.onnx, model.yaml, card.html")):
        f = final.add_parser(name, help=text)
        f.add_argument("run_dir")

    p = sub.add_parser("status", help="progress of runs: generations, candidates ok/failed/pending, best so far")
    p.add_argument("run_dirs", nargs="*", metavar="RUN",
                   help="results/RUN or a run name (default: every run under results/)")
    p.add_argument("--config", default=None, help="config the runs came from, for the planned generations")

    p = sub.add_parser("best", help="the best candidate's spec (best.yaml, or the best so far without a report)")
    p.add_argument("run_dir", metavar="RUN")
    p.add_argument("--pick", default=None, metavar="RULE",
                   help="pick from the feasible front: max:METRIC, min:METRIC or knee (several objectives)")

    p = sub.add_parser("compare", help="runs side by side, and a plot of best-so-far accuracy")
    p.add_argument("run_dirs", nargs="+", metavar="RUN")
    p.add_argument("--out", default="compare.png", help="plot file (default compare.png)")
    p.add_argument("--config", default=None, help="config the runs came from, for the planned generations")

    p = sub.add_parser("predict", help="classify image files with an exported final model",
                       description="Print PATH<TAB>CLASS<TAB>PROBABILITY for each image: --top K lines per "
                                   "image, most probable first. Uses model.onnx with onnxruntime (no torch) "
                                   "unless --torch.")
    p.add_argument("folder", metavar="FOLDER",
                   help="the final model's folder (results/RUN/final: model.yaml and the exports)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, sized and coloured as model.yaml says")
    p.add_argument("--torch", action="store_true", help="run model.pt with PyTorch instead of model.onnx")
    p.add_argument("--top", type=int, default=1, metavar="K", help="the K most probable classes, a line each "
                   "(a segmentation model: the K classes with the largest share of the pixels, and that share)")
    p.add_argument("--masks", default=None, metavar="DIR",
                   help="a segmentation model: write each image's mask to DIR/<image name>.png (class indices)")

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except _known_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        if (args.command in WORKFLOW_STEPS or getattr(args, "meta_command", None) in META_STEPS
                or args.command == "final"):
            _move_aside_if_corrupt(e)
        return 2


# The steps Snakemake runs: a damaged file they read is moved aside for the
# next `snakemake` to re-make, never read again.
WORKFLOW_STEPS = ("propose", "screen", "train", "evaluate", "aggregate", "report")
META_STEPS = ("task", "build")  # python -m nas meta task|build: rules task_features and meta_model


def _move_aside_if_corrupt(error: Exception) -> None:
    from nas.io import CorruptArtefact
    from nas.layout import remake_target

    if not isinstance(error, CorruptArtefact) or not error.path.exists():
        return
    target = remake_target(error.path)
    aside = target.with_name(f"{target.name}.corrupt")
    if aside.is_dir():
        import shutil

        shutil.rmtree(aside)
    target.replace(aside)
    print(f"moved {target} to {aside}: run snakemake again to re-make it (and what was made from it)",
          file=sys.stderr)


def _dispatch(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from nas.layout import DEFAULT_CONFIG

    if args.command == "check":
        from nas.config import ConfigError, load_config, resolve_runs

        if args.config is None and not Path(DEFAULT_CONFIG).is_file():
            raise ConfigError(f"no config given and no {DEFAULT_CONFIG} in {Path.cwd()}; "
                              "name one: snakenas check my-search.yaml")
        runs = resolve_runs(load_config(args.config or DEFAULT_CONFIG))
        for name, run in runs.items():
            objective = run["objectives"][0]
            screen = run.get("screen")
            print(f"{name}: {run['strategy']['name']} on {run['space']['name']}, "
                  f"{run['generations']} generations, evaluator {run['evaluator']['name']}, "
                  f"objective {objective['metric']} ({objective['direction']})"
                  + (f", screened by {screen['by']} (keep {screen['keep']:g})" if screen else ""))
    elif args.command == "propose":
        from nas.steps import propose

        propose(args.run_dir, args.generation)
    elif args.command == "screen":
        from nas.steps import screen

        screen(args.run_dir, args.generation)
    elif args.command == "train":
        # With --shared-trainer: no server took it (main asked first), so here.
        from nas.steps import evaluate

        evaluate(args.spec, args.out, checkpoint=args.checkpoint)
    elif args.command == "evaluate":
        from nas.steps import evaluate_generation

        evaluate_generation(args.run_dir, args.generation)
    elif args.command == "trainer-server":
        # Imported here once, before the server forks: every job's child has them.
        from nas import report, steps  # noqa: F401
        from nas.meta import features  # noqa: F401
        from nas.shared_trainer import serve

        if not args.light:
            from nas.evaluators import training  # noqa: F401
            from nas.tasks.digits import bundled

            bundled()  # the bundled digits read once (about 25 ms a job otherwise)
        return serve(args.socket, args.owner, entry=main, torch=not args.light)
    elif args.command == "aggregate":
        from nas.steps import aggregate

        aggregate(args.run_dir, args.generation)
    elif args.command == "bench":
        from nas.bench import BENCH_CONFIG, run_bench

        features = _yaml_mapping(open(args.task_features, encoding="utf-8").read()) if args.task_features else {}
        objectives = [_pair(o, "--objectives") for o in args.objectives.split(",") if o]
        constraints = [_bound(c) for c in args.constraint]
        summary = run_bench(args.table, args.metric, args.strategies.split(","), args.seeds, args.budget, args.out,
                            arch_column=args.arch_column, jobs=args.jobs, config_path=args.config or BENCH_CONFIG,
                            meta_from=[c for c in args.meta_from.split(",") if c], task_features=features,
                            objectives=objectives, constraints=constraints,
                            cheap=[c for c in args.cheap.split(",") if c], ops=[o for o in args.ops.split(",") if o])
        for row in summary:
            print(f"{row['strategy']:>10} {row['budget']:>4} {row['mean']:8.3f} ± {row['std']:.3f}  regret {row['regret']:.3f}")
    elif args.command == "meta":
        _meta(args)
    elif args.command == "final":
        from nas import final

        step = {"propose": final.propose, "table": final.table, "model": final.model}[args.final_command]
        step(args.run_dir)
    elif args.command == "report":
        from nas.report import report

        print(json.dumps(report(args.run_dir, args.generations), indent=2))
    elif args.command in ("status", "best", "compare"):
        from nas import inspect

        return inspect.main(args)
    elif args.command == "predict":
        from nas.predict import predict, write_mask

        for result in predict(args.folder, args.images, use_torch=args.torch, top=args.top):
            for name, probability in result["classes"]:
                print(f"{result['image']}\t{name}\t{probability:.4f}")
            if args.masks and "mask" in result:
                write_mask(result["mask"], args.masks, result["image"])
    return 0


def _pair(text: str, option: str) -> tuple[str, str]:
    from nas.config import ConfigError

    column, _, direction = text.rpartition(":")
    if direction not in ("max", "min") or not column:
        raise ConfigError(f"{option} {text!r}: expected COLUMN:max or COLUMN:min")
    return column, direction


def _bound(text: str) -> tuple[str, str, float]:
    from nas.config import ConfigError

    column, bound, value = (text.rsplit(":", 2) + ["", ""])[:3] if text.count(":") >= 2 else (text, "", "")
    try:
        return column, _pair(f"{column}:{bound}", "--constraint")[1], float(value)
    except ValueError:
        raise ConfigError(f"--constraint {text!r}: expected COLUMN:max:VALUE or COLUMN:min:VALUE") from None


def _yaml_mapping(text: str) -> dict:
    import yaml

    from nas.config import ConfigError

    value = yaml.safe_load(text) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a YAML mapping, got {text[:80]!r}")
    return value


def _meta(args: argparse.Namespace) -> None:
    import json

    if args.meta_command == "task":
        from nas.meta.features import write_task

        print(json.dumps(write_task(args.run_dir)))
    elif args.meta_command == "build":
        from nas.config import load_config
        from nas.meta.build import build

        if args.meta is not None:
            section = _yaml_mapping(args.meta)
        else:
            section = (load_config(args.config).get("meta") or {}) if args.config else {}
        space = _yaml_mapping(args.space) if args.space else section.get("space")
        model = build(args.out, runs=args.runs, results=args.results, tables=section.get("tables") or [],
                      space=space)
        print(f"{args.out}: {len(model.scores)} tasks, "
              f"{sum(len(s) for s in model.scores.values())} (task, architecture) scores; "
              f"predictor: {'+'.join(model.encoding)}, ridge {model.ridge:g} (cross-validated)")
    elif args.meta_command == "rank":
        from nas.meta.model import load_model

        scorer = load_model(args.model).scorer({k: float(v) for k, v in _yaml_mapping(args.features).items()})
        for task, w in scorer.weights.items():
            print(f"# weight {w:.3f} {task}")
        top = scorer.top(args.top)
        for arch, score in zip(top, scorer.score(top)):
            print(f"{score:.3f}\t{'known' if scorer.known(arch) else 'predicted'}\t{arch}")
