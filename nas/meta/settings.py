"""The `meta:` section of a config: which runs are knowledge, where the model goes."""

from __future__ import annotations

from typing import Any

from nas import layout
from nas.config import ConfigError
from nas.evaluators import evaluator_class

META_DIR = layout.META_DIR


def meta_runs(meta: dict[str, Any], runs: dict[str, dict[str, Any]]) -> list[str]:
    """The runs whose results are knowledge: `meta.runs`, or every run without
    a warm start from results/meta (such a run would need the model it helps to build)
    whose evaluator measures the task (not a proxy's scores)."""
    if not meta:
        return []
    if "meta" in runs:
        raise ConfigError(f"run name 'meta' is taken: {META_DIR}/ holds the meta-model; rename the run")
    names = meta.get("runs")
    if names is None:
        return [name for name, run in runs.items()
                if not starts_from_meta(run) and measures_the_task(run)]
    for name in names:
        if name not in runs:
            raise ConfigError(f"config key meta.runs: no run {name!r}; runs: {', '.join(runs)}")
        if starts_from_meta(runs[name]):
            raise ConfigError(f"config key meta.runs: run {name!r} is warm-started, so it cannot be knowledge "
                              "for the model it starts from")
    return list(names)


def measures_the_task(run: dict[str, Any]) -> bool:
    """Whether a run's results measure its task (its evaluator's `knowledge`)."""
    name = (run.get("evaluator") or {}).get("name")
    return name is None or evaluator_class(name).knowledge


def starts_from_meta(run: dict[str, Any]) -> bool:
    """Whether the run is warm-started from the model this section builds."""
    model = (run.get("warm_start") or {}).get("model")
    return model is not None and str(model).rstrip("/").removeprefix("./") == META_DIR


def warm_start_inputs(run: dict[str, Any], generation: int | str) -> list[str]:
    """What the propose step of `generation` reads for a warm start: the model
    and the run's task.json, for generation 0 (later ones follow from it).
    For rule propose: `meta=lambda wc: warm_start_inputs(RUNS[wc.run], wc.g)`."""
    if not run.get("warm_start") or int(generation) != 0:
        return []
    return [layout.meta_model(run["warm_start"]["model"]), layout.task_json(layout.run_dir(run["name"]))]
