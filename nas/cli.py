"""`python -m nas <step>`: every workflow step, runnable by hand."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence


def _known_errors() -> tuple[type[Exception], ...]:
    from nas.config import ConfigError
    from nas.evaluators.table import TableError
    from nas.io import ArtefactError
    from nas.spaces import SpaceError
    from nas.strategies import StrategyError
    from nas.tasks import TaskError

    return (ConfigError, ArtefactError, SpaceError, StrategyError, TableError, TaskError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nas", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="validate a config and list its runs")
    p.add_argument("config", nargs="?", default="config/config.yaml")

    p = sub.add_parser("propose", help="write the candidate specs of one generation")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("train", help="train (or look up) one candidate spec")
    p.add_argument("spec")
    p.add_argument("--out", required=True, help="folder for metrics.json and epochs.csv")

    p = sub.add_parser("aggregate", help="table and strategy state of one generation")
    p.add_argument("run_dir")
    p.add_argument("--generation", "-g", type=int, required=True)

    p = sub.add_parser("report", help="history.tsv, summary.json, best.yaml, progress.png")
    p.add_argument("run_dir")
    p.add_argument("--generations", type=int, required=True)

    p = sub.add_parser("bench", help="compare strategies on a tabular benchmark, many seeds, in process")
    p.add_argument("--table", required=True, help="CSV/TSV with one row per architecture")
    p.add_argument("--metric", required=True, help="column to select on and report")
    p.add_argument("--arch-column", default="ArchitectureString")
    p.add_argument("--strategies", default="random,ga,rea", help="comma-separated runs of --config")
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--budget", type=int, default=300, help="distinct queries per search")
    p.add_argument("--out", required=True)
    p.add_argument("--jobs", type=int, default=2, help="worker processes")
    p.add_argument("--config", default=None, help="strategies' settings (default config/bench.yaml)")
    p.add_argument("--meta-from", default="", help="comma-separated columns: the knowledge of X+meta strategies")
    p.add_argument("--task-features", default=None, help="YAML: column -> its task features")

    p = sub.add_parser("meta", help="meta-learning: task features, knowledge base, meta-model")
    meta = p.add_subparsers(dest="meta_command", required=True)
    m = meta.add_parser("task", help="write results/RUN/task.json (the run's task id and features)")
    m.add_argument("run_dir")
    m = meta.add_parser("build", help="knowledge base and meta-model from finished runs and tables")
    m.add_argument("--out", default="results/meta")
    m.add_argument("--runs", nargs="*", default=None, help="run folders (default: every finished run under --results)")
    m.add_argument("--results", default="results")
    m.add_argument("--config", default=None, help="a config whose `meta:` section names tables (and space)")
    m.add_argument("--space", default=None, help="YAML mapping of the space the predictor encodes")
    m = meta.add_parser("rank", help="the meta-model's best architectures for a task")
    m.add_argument("model", help="folder of the meta-model")
    m.add_argument("--features", default="{}", help="YAML mapping: the task's features")
    m.add_argument("--top", type=int, default=10)

    args = parser.parse_args(argv)
    try:
        return _dispatch(args)
    except _known_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "check":
        from nas.config import load_config, resolve_runs

        runs = resolve_runs(load_config(args.config))
        for name, run in runs.items():
            print(f"{name}: {run['strategy']['name']} on {run['space']['name']}, "
                  f"{run['generations']} generations, evaluator {run['evaluator']['name']}")
    elif args.command == "propose":
        from nas.steps import propose

        propose(args.run_dir, args.generation)
    elif args.command == "train":
        from nas.steps import evaluate

        evaluate(args.spec, args.out)
    elif args.command == "aggregate":
        from nas.steps import aggregate

        aggregate(args.run_dir, args.generation)
    elif args.command == "bench":
        from nas.bench import BENCH_CONFIG, run_bench

        features = _yaml_mapping(open(args.task_features, encoding="utf-8").read()) if args.task_features else {}
        summary = run_bench(args.table, args.metric, args.strategies.split(","), args.seeds, args.budget, args.out,
                            arch_column=args.arch_column, jobs=args.jobs, config_path=args.config or BENCH_CONFIG,
                            meta_from=[c for c in args.meta_from.split(",") if c], task_features=features)
        for row in summary:
            print(f"{row['strategy']:>10} {row['budget']:>4} {row['mean']:8.3f} ± {row['std']:.3f}  regret {row['regret']:.3f}")
    elif args.command == "meta":
        _meta(args)
    elif args.command == "report":
        from nas.report import report

        print(json.dumps(report(args.run_dir, args.generations), indent=2))
    return 0


def _yaml_mapping(text: str) -> dict:
    import yaml

    from nas.config import ConfigError

    value = yaml.safe_load(text) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"expected a YAML mapping, got {text[:80]!r}")
    return value


def _meta(args: argparse.Namespace) -> None:
    if args.meta_command == "task":
        from nas.meta.features import write_task

        print(json.dumps(write_task(args.run_dir)))
    elif args.meta_command == "build":
        from nas.config import load_config
        from nas.meta.build import build

        section = (load_config(args.config).get("meta") or {}) if args.config else {}
        space = _yaml_mapping(args.space) if args.space else section.get("space")
        model = build(args.out, runs=args.runs, results=args.results, tables=section.get("tables") or [],
                      space=space)
        print(f"{args.out}: {len(model.scores)} tasks, "
              f"{sum(len(s) for s in model.scores.values())} (task, architecture) scores")
    elif args.meta_command == "rank":
        from nas.meta.model import load_model

        scorer = load_model(args.model).scorer({k: float(v) for k, v in _yaml_mapping(args.features).items()})
        for task, w in scorer.weights.items():
            print(f"# weight {w:.3f} {task}")
        for arch in scorer.top(args.top):
            print(f"{scorer.transfer[arch]:.3f}\t{arch}")
