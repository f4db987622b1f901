"""Zero-cost proxies as an evaluator: score untrained networks, a generation per job.

    evaluator: {name: proxy, proxies: [synflow, naswot, ...], batch_size: 64}

Each proxy writes one metric, `zc_<proxy>`, larger first (so `zc_params` and
`zc_flops` rank the larger network first, unlike the cost columns `params`
and `flops` beside them); the primary metric, the default objective, is the
first proxy's. The proxies themselves (what each computes and what it takes:
data or none, labels or none) are nas/evaluators/zero_cost.py, loaded by name
when a generation is scored, so this side stays torch-free. Scoring one
network takes well under a second, so the workflow scores a whole generation
in one job (`per_generation`); a screen (`screen: {by: zc_<proxy>}`) uses the
same code on a generation's proposals before any training.

Published work finds these proxies useful as filters, not oracles, and plain
parameter count and FLOPs hard to beat; docs/zero_cost.md measures ours.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Sequence

from nas.evaluators.base import Evaluation, Evaluator, EvaluatorError, epoch_table_columns
from nas.objectives import metric, register
from nas.options import integer
from nas.registry import load
from nas.spaces import make_space
from nas.tasks import Task, TaskInfo, task_for

# The proxies, in the order the docs list them; `params` and `flops` need no network.
PROXIES = ("synflow", "naswot", "jacov", "grad_norm", "snip", "params", "flops")
WITHOUT_NETWORK = ("params", "flops")
PREFIX = "zc_"
DEFAULT_PROXIES = ("synflow",)
# One mini-batch of this many training images (Abdelfattah et al.'s setting).
DEFAULT_BATCH = 64
SCORING = "nas.evaluators.zero_cost:score"

_DESCRIPTIONS = {
    "synflow": "synaptic flow of the untrained network (data-free)",
    "naswot": "log-determinant of the activation-code kernel of one batch",
    "jacov": "decorrelation of one batch's input gradients",
    "grad_norm": "sum of the layers' gradient norms on one batch",
    "snip": "sum of |w dL/dw| on one batch (connection sensitivity)",
    "params": "trainable parameters, larger first (the baseline proxy)",
    "flops": "multiply-accumulates of one image, larger first (the baseline proxy)",
}
for _name in PROXIES:
    register(f"{PREFIX}{_name}", "max", "", f"zero-cost proxy: {_DESCRIPTIONS[_name]}")


def proxy_metric(name: str) -> str:
    """The metric a proxy writes."""
    return f"{PREFIX}{name}"


def proxy_of(metric: str) -> str | None:
    """The proxy behind a metric name (zc_synflow -> synflow), or None."""
    name = metric[len(PREFIX):] if metric.startswith(PREFIX) else None
    return name if name in PROXIES else None


def network_proxies(proxies: Sequence[str]) -> list[str]:
    """Those of the proxies that build a network (nas/evaluators/zero_cost.py)."""
    return [p for p in proxies if p not in WITHOUT_NETWORK]


def needs_network(proxies: Sequence[str]) -> bool:
    """Whether computing these proxies builds networks (imports torch)."""
    return bool(network_proxies(proxies))


def score(specs: Sequence[dict[str, Any]], task: Task, proxies: Sequence[str], batch_size: int) -> list[Evaluation]:
    """Every spec's proxies, in this one process: status, zc_<proxy> for each, the
    cost columns, the seconds it took. Torch is imported only where a proxy builds
    a network (nas/evaluators/zero_cost.py)."""
    network = network_proxies(proxies)
    scored = load(SCORING)(specs, task, network, int(batch_size)) if network and specs else []
    info = task.describe()
    out = []
    for i, spec in enumerate(specs):
        start = time.perf_counter()
        metrics = sized(spec, task, info, proxies)
        found = scored[i] if scored else {"values": {}, "status": "ok", "seconds": 0.0, "device": "cpu"}
        metrics.update({proxy_metric(p): v for p, v in found["values"].items()})
        metrics.update(status=found["status"], epochs=0, device=found["device"],
                       train_seconds=round(found["seconds"] + time.perf_counter() - start, 4))
        out.append(Evaluation(metrics))
    return out


def sized(spec: dict[str, Any], task: Task, info: TaskInfo, proxies: Sequence[str]) -> dict[str, Any]:
    """A spec's metrics before any network is built: status ok, every proxy empty but
    the sizes (`params`, `flops` from the task's cost, zc_params and zc_flops too)."""
    space = make_space(spec["space"])
    sizes = task.cost(space, space.from_string(spec["arch"]), info)
    metrics: dict[str, Any] = {"status": "ok", **{proxy_metric(p): math.nan for p in proxies}, **sizes}
    metrics.update({proxy_metric(p): float(sizes[p]) for p in proxies if p in sizes})
    return metrics


class ProxyEvaluator(Evaluator):
    """Options: `proxies` (a list of PROXIES; the first is the primary metric),
    `batch_size` (the images of the one mini-batch that naswot, jacov, grad_norm
    and snip see)."""

    name = "proxy"
    options = {"proxies": list(DEFAULT_PROXIES), "batch_size": DEFAULT_BATCH}
    per_generation = True
    cheap_metrics = ("params", "flops")
    how = "scores untrained networks"
    # Scores that predict accuracy are not results of the task: not knowledge by default.
    knowledge = False

    def __init__(self, cfg: dict[str, Any], task: dict[str, Any] | None = None, repeats: int = 1) -> None:
        super().__init__(cfg, task, repeats)
        self.task = task_for(self.task_cfg)
        self.proxies = tuple(self.cfg.get("proxies") or DEFAULT_PROXIES)
        self.batch_size = self.cfg.get("batch_size", DEFAULT_BATCH)
        self.metrics = tuple(metric(proxy_metric(p)) for p in self.proxies if p in PROXIES)
        self.primary = proxy_metric(self.proxies[0]) if self.proxies else ""
        self.produces = (*(m.name for m in self.metrics), "params", "flops")
        self.epoch_columns = epoch_table_columns(())
        self.needs_torch = needs_network(self.proxies)

    def check(self) -> None:
        super().check()
        if not self.proxies:
            raise EvaluatorError("proxies: name at least one; choose from: " + ", ".join(PROXIES), "proxies")
        for p in self.proxies:
            if p not in PROXIES:
                raise EvaluatorError(f"proxies: {p!r} is not a proxy; choose from: {', '.join(PROXIES)}", "proxies")
        if len(set(self.proxies)) != len(self.proxies):
            raise EvaluatorError("proxies: a proxy is named twice", "proxies")
        integer("evaluator proxy", "batch_size", self.batch_size, 2, EvaluatorError)
        self.task.check()

    def resolved(self) -> dict[str, Any]:
        return {"name": self.name, "proxies": list(self.proxies), "batch_size": int(self.batch_size)}

    def resolved_task(self) -> dict[str, Any]:
        return self.task.resolved()

    def task_id(self) -> str:
        # Not the data task's id: proxy scores are not accuracies, and results that
        # share a task id are pooled as knowledge of that task (nas/meta/).
        return f"proxy:{self.primary} {self.task.task_id()}"

    def data_task(self) -> Task:
        return self.task

    def evaluate_generation(self, specs: Sequence[dict[str, Any]],
                            out_dirs: Sequence[str | Path | None]) -> list[Evaluation]:
        return score(specs, self.task, self.proxies, self.batch_size)
