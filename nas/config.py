"""Reading a config into fully resolved, checked runs.

Everything that can be wrong with a config is found here, before any job
starts, and reported as one ConfigError naming the key, the bad value and
what is allowed. The Snakefile and the command line share this code.
"""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import jsonschema
import yaml

from nas import layout
from nas.evaluators import EvaluatorError, evaluator_class, evaluator_for
from nas.evaluators.proxy import DEFAULT_BATCH, PROXIES, proxy_of
from nas.evaluators.recipe import TRAINING_DEFAULTS
from nas.io import CorruptArtefact, read_yaml
from nas.objectives import ObjectiveError, constraints_of, describe_constraints, metric, resolve
from nas.options import unknown_option
from nas.spaces import SPACES, SpaceError, make_space
from nas.strategies import StrategyError, make_strategy, strategy_class
from nas.strategies.base import pool_size
from nas.tasks import TaskError, task_class

REPO = Path(__file__).resolve().parents[1]
SCHEMA_PATH = REPO / "config" / "schema.yaml"

# Keys that never change what a search finds: they are left out of run.yaml,
# so raising `generations` extends a finished run instead of redoing it.
NOT_FROZEN = ("generations", "resources", "reference_point", "final")

# A run name is its folder, results/<name>: only characters that cannot form a
# path separator, a parent reference or a hidden folder. Keep in step with the
# `run` wildcard constraint of rules/search.smk.
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
RUN_NAME_MAX = 100


class ConfigError(ValueError):
    """A config that cannot run; the message says which key and why."""


@lru_cache(maxsize=None)
def load_schema(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_config(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {e}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path}: expected a mapping with `runs:` at the top")
    return config


def resolve_runs(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Run name -> complete settings (defaults merged and filled), all checked."""
    schema = load_schema()
    _validate(config, schema, lambda path: path)
    defaults = config.get("defaults") or {}
    runs = {}
    for name, overrides in config["runs"].items():
        check_run_name(name)
        overrides = overrides or {}
        merged = merge(defaults, overrides)

        def where(path: list, name=name, overrides=overrides) -> list:
            # A key set in the defaults only is reported there; one set nowhere
            # (a required option left out) belongs to the run.
            in_defaults = _has_path(defaults, path) and not _has_path(overrides, path)
            return ["defaults", *path] if in_defaults else ["runs", name, *path]

        _validate(merged, {"$defs": schema["$defs"], **schema["$defs"]["run"]}, where)
        run = _fill_defaults(merged, schema["$defs"]["run"], schema)
        run["training"] = {**TRAINING_DEFAULTS, **run["training"]}
        runs[name] = {"name": name, **_resolved(run, where)}
    return runs


def execution_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The config's `execution` section with defaults filled (call after resolve_runs)."""
    schema = load_schema()
    return _fill_defaults(config.get("execution") or {}, schema["properties"]["execution"], schema)


def check_run_name(name: Any) -> None:
    """Refuse a run name that is not one plain folder name under results/."""
    if not isinstance(name, str):
        why = f"it is of type {type(name).__name__}, not a string (quote it in the YAML)"
    elif not name:
        why = "it is empty"
    elif "/" in name or "\\" in name:
        why = "it contains a path separator, so its folder would not be results/<name>"
    elif ".." in name:
        why = "it contains '..', which can name a folder outside results/"
    elif name.startswith("."):
        why = "it starts with '.' (a hidden folder)"
    elif len(name) > RUN_NAME_MAX:
        why = f"it is longer than {RUN_NAME_MAX} characters"
    elif not RUN_NAME.fullmatch(name):
        bad = sorted({ch for ch in name if not re.fullmatch(r"[A-Za-z0-9_.-]", ch)})
        why = f"it contains {', '.join(map(repr, bad))}" if bad else f"it starts with {name[0]!r}"
    else:
        return
    raise ConfigError(
        f"config key runs: run name {name!r} is not allowed: {why}. A run name is its folder results/<name>: "
        "use letters, digits, '_', '-' and '.', starting with a letter or digit"
    )


def frozen(run: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's settings that determines its results (run.yaml)."""
    return {k: v for k, v in run.items() if k not in NOT_FROZEN}


def load_run(rdir: str | Path) -> dict[str, Any]:
    """A run's settings as its run.yaml holds them (what `frozen` wrote)."""
    run = read_yaml(layout.run_config(rdir))
    if not isinstance(run, dict) or "name" not in run or "objectives" not in run:
        raise CorruptArtefact(layout.run_config(rdir), "not a run settings file of this version")
    return run


def candidates_in(run: dict[str, Any], generation: int) -> int:
    """How many architectures generation `generation` trains."""
    return run["population"] if generation == 0 else run["candidates"]


def screen_proxy(run: dict[str, Any]) -> str | None:
    """The zero-cost proxy a run screens its proposals by, in a job of their own
    between propose and training (`screen: {by: zc_<proxy>}`), or None."""
    return proxy_of(str((run.get("screen") or {}).get("by", "")))


def proposals_in(run: dict[str, Any], generation: int) -> int:
    """How many architectures propose writes for a generation: its candidates, or
    with a proxy screen the pool the screen job scores."""
    n = candidates_in(run, generation)
    return pool_size(n, run["screen"]["keep"]) if screen_proxy(run) else n


# -- helpers ------------------------------------------------------------------------


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            # A section that names another space/strategy/task/evaluator starts
            # afresh: options of the default one would not fit the new one.
            if "name" in value and value["name"] != out[key].get("name"):
                out[key] = copy.deepcopy(value)
            else:
                out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _has_path(d: Any, path: list) -> bool:
    for key in path:
        if isinstance(d, dict) and key in d:
            d = d[key]
        elif isinstance(d, list) and isinstance(key, int) and key < len(d):
            d = d[key]
        else:
            return False
    return True


def _fill_defaults(value: Any, schema: dict[str, Any], root: dict[str, Any]) -> Any:
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    out = dict(value)
    for key, sub in schema["properties"].items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if key in out:
            out[key] = _fill_defaults(out[key], sub, root)
    return out


# JSON Schema counts 2.0 as an integer; YAML reads `2.0` as a float, and a float
# where a count is expected (range(generations)) fails only once jobs run.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


def _validate(instance: Any, schema: dict[str, Any], where) -> None:
    validator = _Validator(schema)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        raise ConfigError(_describe(errors[0], where))


def _describe(error: jsonschema.ValidationError, where) -> str:
    path = list(error.absolute_path)
    value = error.instance
    kind = error.validator
    if kind == "additionalProperties" and path and path[-1] == "warm_start" and "filter" in (value or {}):
        key = ".".join(map(str, where(path + ["filter"])))
        k = value["filter"]
        keep = f"{1 / k:g}" if isinstance(k, (int, float)) and not isinstance(k, bool) and k >= 1 else "1/k"
        return (f"config key {key}: replaced by the run's screen: write `screen: {{by: meta, keep: {keep}}}` "
                f"(filter: k proposes k x candidates and keeps the best-scored: keep 1/k)")
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        key = ".".join(map(str, where(path + extra[:1]) if extra else where(path)))
        return f"config key {key}: unknown key; allowed keys here: {', '.join(allowed)}"
    key = ".".join(map(str, where(path))) or "(top level)"
    if kind == "enum":
        return f"config key {key}: {value!r} is not allowed; choose one of: {', '.join(sorted(map(str, error.validator_value)))}"
    if kind == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"config key {key}: expected {expected}, got {value!r}"
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        sign = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[kind]
        return f"config key {key}: must be {sign} {error.validator_value}, got {value!r}"
    if kind == "anyOf":
        return f"config key {key}: {value!r} is not allowed (expected a number in [0, 1] or null)"
    if kind == "minProperties" and error.validator_value == 1 and key.endswith("runs"):
        return f"config key {key}: is empty; name at least one run (runs: {{my-run: {{}}}})"
    if kind == "minProperties" and ".constraints." in key:
        return f"config key {key}: is empty; a constraint needs a bound: {{max: X}} and/or {{min: X}}"
    if kind == "minProperties":
        return f"config key {key}: is empty; give at least {error.validator_value} entry"
    if kind == "required":
        return f"config: {error.message} (at {key})"
    return f"config key {key}: {error.message}"


def _resolved(run: dict[str, Any], where: Callable[[list], list]) -> dict[str, Any]:
    """The run checked beyond the schema (options per space, strategy, task and
    evaluator; data paths; tables; objectives) and complete: every default that
    lives in a class is written out, so that run.yaml means the same whatever
    later code's defaults are."""

    def fail(path: list, message: str) -> None:
        raise ConfigError(f"config key {'.'.join(map(str, where(path)))}: {message}")

    for section, kind, cls in (
        ("space", "space", SPACES.get(run["space"]["name"])),
        ("strategy", "strategy", strategy_class(run["strategy"]["name"])),
        ("evaluator", "evaluator", evaluator_class(run["evaluator"]["name"])),
    ):
        unknown = unknown_option(kind, run[section]["name"], run[section], cls.option_names())
        if unknown:
            fail([section, unknown[0]], unknown[1])
    try:
        space = make_space(run["space"])
    except (SpaceError, TypeError) as e:
        fail(["space"], str(e))
    try:
        strategy = make_strategy(run["strategy"], space, run["population"])
    except StrategyError as e:
        fail(["strategy"], str(e))
    sample = run["strategy"].get("sample_size") or run["strategy"].get("tournament_size")
    if sample is not None and sample > run["population"]:
        key = "sample_size" if "sample_size" in run["strategy"] else "tournament_size"
        fail(["strategy", key], f"{sample} is larger than population {run['population']}")
    evaluator = evaluator_for(run)
    if evaluator.data_task() is not None:
        unknown = unknown_option("task", run["task"]["name"], run["task"], task_class(run["task"]["name"]).option_names())
        if unknown:
            fail(["task", unknown[0]], unknown[1])
    try:
        evaluator.check()
    except TaskError as e:
        fail(["task"], str(e))
    except EvaluatorError as e:
        fail(["evaluator", *([e.key] if e.key else [])], str(e))
    if run["training"]["repeats"] > 1 and evaluator.deterministic:
        fail(["training", "repeats"], f"{run['training']['repeats']} trainings per candidate, but evaluator "
             f"{evaluator.name!r} is deterministic (every repeat would give the same metrics); set repeats: 1")
    if run["training"]["repeats"] > 1 and not evaluator.trains and not evaluator.deterministic:
        fail(["training", "repeats"], f"{run['training']['repeats']} trainings per candidate, but evaluator "
             f"{evaluator.name!r} {evaluator.how}: repeats are for training; set repeats: 1")
    if run["resources"]["gpu_model"] and run["resources"]["gpus"] < 1:
        fail(["resources", "gpu_model"], f"{run['resources']['gpu_model']!r} asks for a GPU type, "
             "but resources.gpus is 0; set gpus to 1 or more")
    objectives = _objectives(run.get("objectives"), evaluator, strategy, fail)
    constraints = _constraints(run.get("constraints"), evaluator, space, fail)
    if run.get("final") is not None:
        run["final"] = _final(run["final"], run, evaluator, objectives, fail)
    if run.get("screen") is not None:
        run["screen"] = _screen(run["screen"], run, evaluator, fail)
    for name in run.get("reference_point") or {}:
        if name not in [o["metric"] for o in objectives]:
            fail(["reference_point", name], f"{name!r} is not an objective of the run "
                 f"({', '.join(o['metric'] for o in objectives)})")
    out = {}
    for key, value in run.items():
        if key == "space":
            value = {"name": space.name, **space.options()}
        elif key == "strategy":
            value = {"name": strategy.name, **strategy.options()}
        elif key == "evaluator":
            value = evaluator.resolved()
        elif key == "task":
            value = evaluator.resolved_task()
        elif key in ("objectives", "constraints"):
            continue
        out[key] = value
        if key == "task":
            # The id of the task as the config gave it (Task.task_id), taken before its defaults are filled.
            out["task_id"] = evaluator.task_id()
        if key == "evaluator":
            out["objectives"] = objectives
            if constraints:
                out["constraints"] = constraints
    return out


def _final(final: dict[str, Any], run: dict[str, Any], evaluator, objectives, fail) -> dict[str, Any]:
    """The `final:` section complete: epochs and pick rule resolved, so that final.yaml
    says exactly what the final step does."""
    if not evaluator.trains:
        fail(["final"], f"evaluator {evaluator.name!r} {evaluator.how}, it trains no network: "
             "there is no model to re-train or export; use evaluator: train")
    out = dict(final)
    if out["epochs"] is None:
        out["epochs"] = run["training"]["epochs"]
    rule = out["pick"]
    if len(objectives) == 1:
        if rule is not None:
            fail(["final", "pick"], f"{rule!r} chooses among several objectives; this run has one "
                 f"({objectives[0]['metric']}): its top candidates are its best by it; leave pick out")
    else:
        rule = out["pick"] = rule or "knee"
        way, _, name = rule.partition(":")
        if rule != "knee" and (way not in ("max", "min") or not name):
            fail(["final", "pick"], f"{rule!r}: use max:METRIC, min:METRIC or knee")
        if rule != "knee" and name not in evaluator.produces:
            fail(["final", "pick"], f"{name!r} is not a metric of evaluator {evaluator.name!r} "
                 f"({', '.join(evaluator.produces)})")
    return out


# The screens that run inside propose (nas.runner builds them), beside zc_<proxy>.
PREDICTOR_SCREENS = ("meta", "predictor")


def _screen(screen: dict[str, Any], run: dict[str, Any], evaluator, fail) -> dict[str, Any]:
    """The `screen:` section checked and complete (batch_size filled for a proxy)."""
    by = screen["by"]
    proxy = proxy_of(by)
    if proxy is None and by not in PREDICTOR_SCREENS:
        fail(["screen", "by"], f"{by!r} is not a screen; choose a zero-cost proxy "
             f"({', '.join('zc_' + p for p in PROXIES)}), meta or predictor")
    if proxy is None:
        if "batch_size" in screen:
            fail(["screen", "batch_size"], f"screen by {by} scores no network; batch_size is for zc_<proxy> screens")
        if by == "meta" and not run.get("warm_start"):
            fail(["screen", "by"], "meta scores by the warm start's meta-model; add warm_start: {model: ...} "
                 "or screen by predictor")
        return {"by": by, "keep": float(screen["keep"])}
    if evaluator.data_task() is None:
        fail(["screen", "by"], f"{by} scores networks built for the run's data task, and evaluator "
             f"{evaluator.name!r} has none; screen by predictor (or meta) instead")
    return {"by": by, "keep": float(screen["keep"]), "batch_size": int(screen.get("batch_size", DEFAULT_BATCH))}


def _metric_problem(name: str, evaluator) -> str | None:
    """Why a run cannot select on (or bound) `name`, or None."""
    try:
        known = metric(name)
    except ObjectiveError as e:
        return str(e)
    if name not in evaluator.produces:
        hint = " (set evaluator.latency: {} to measure latencies)" if (
            name.startswith("latency") and "latency" in evaluator.options) else ""
        return f"evaluator {evaluator.name!r} does not produce {name!r}; it produces: {', '.join(evaluator.produces)}{hint}"
    if not known.selectable:
        return f"{name!r} is reported, never selected on ({known.description})"
    return None


def _objectives(entries: list[dict[str, Any]] | None, evaluator, strategy, fail) -> list[dict[str, str]]:
    """The run's objectives, each direction filled; default: the evaluator's primary metric."""
    if not entries:
        entries = [{"metric": evaluator.primary}]
    seen = set()
    for i, entry in enumerate(entries):
        problem = _metric_problem(entry["metric"], evaluator)
        if problem:
            fail(["objectives", i, "metric"], problem)
        if entry["metric"] in seen:
            fail(["objectives", i, "metric"], f"{entry['metric']!r} is named twice")
        seen.add(entry["metric"])
    resolved = resolve(entries)
    try:
        strategy.check_objectives(resolved)
    except StrategyError as e:
        fail(["objectives"] if len(entries) > 1 else ["strategy"], str(e))
    return resolved


def _constraints(bounds: dict[str, dict[str, float]] | None, evaluator, space, fail) -> dict[str, dict[str, float]]:
    """The run's constraints, checked: known, produced, selectable metrics with min <= max.
    A cheap one that no architecture of an enumerable space meets is refused."""
    out = {}
    for name, bound in (bounds or {}).items():
        problem = _metric_problem(name, evaluator)
        if problem:
            fail(["constraints", name], problem)
        if "min" in bound and "max" in bound and bound["min"] > bound["max"]:
            fail(["constraints", name], f"min {bound['min']} is above max {bound['max']}")
        out[name] = {k: bound[k] for k in ("min", "max") if k in bound}
    constraints = constraints_of({"constraints": out})
    meets = evaluator.cheap_feasible(space, constraints)
    genomes = space.all_genomes() if meets is not None else None
    if genomes is not None and not any(map(meets, genomes)):
        fail(["constraints"], f"no architecture of space {space.name!r} meets "
             f"{describe_constraints(evaluator.cheap_constraints(constraints))}")
    return out
