"""Inspecting runs from their files: `python -m nas status | best | compare`.

Everything here reads a run folder as it is on disk, at any moment: finished,
still running, or killed half-way. A generation is *done* when its table.tsv
exists; candidates of an unfinished generation count as soon as their
metrics.json exists; a spec without metrics.json is running or pending. A file
that cannot be read is not fatal: it becomes a *problem* that names the file,
and the rest of the run is still shown. No torch, no Snakemake.

Planned generations are not in run.yaml (raising them extends a run without
re-running it), so they come from, in order: the config given with
`--config` (the run of the same name), else the last report (summary.json),
raised to the generation folders present; with neither, the folders present
give a lower bound, shown as ">=N" (or "?" when there are none).
"""

from __future__ import annotations

import base64
import html
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from nas import layout
from nas.config import load_config, resolve_runs
from nas.importance import fitted
from nas.io import ArtefactError, CorruptArtefact, dump_yaml, read_json, read_tsv, read_yaml, write_figure
from nas.objectives import (
    Constraint,
    Objective,
    best_row,
    best_so_far,
    constraints_of,
    front_hypervolume,
    ideal_and_nadir,
    label,
    objectives_of,
    pareto_rows,
    pick,
    primary,
    reported_on_test,
    values,
)
from nas.search import LEADING_COLUMNS, TRAILING_COLUMNS

GEN_DIR = re.compile(r"gen_(\d{3,})")
CAND_FILE = re.compile(r"(c\d{2,})\.yaml")


@dataclass
class RunScan:
    """What the files of one run say right now."""

    rdir: Path
    settings: dict[str, Any] | None = None
    planned: int | None = None  # generations planned; a lower bound unless planned_known
    planned_known: bool = False
    generations: list[int] = field(default_factory=list)  # folders present, in order
    done: list[int] = field(default_factory=list)  # generations with a readable table
    rows: list[dict[str, Any]] = field(default_factory=list)  # every evaluated candidate, in order
    pending: int = 0  # specs without metrics.json
    problems: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str((self.settings or {}).get("name") or self.rdir.name)

    def setting(self, key: str) -> str:
        value = (self.settings or {}).get(key)
        return str(value.get("name", "?")) if isinstance(value, dict) else "?"

    @property
    def ok(self) -> int:
        return sum(r["status"] == "ok" for r in self.rows)

    @property
    def failed(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.rows:
            if r["status"] != "ok":
                counts[r["status"]] = counts.get(r["status"], 0) + 1
        return dict(sorted(counts.items()))

    @property
    def objectives(self) -> list[Objective] | None:
        """The run's objectives (run.yaml); None where run.yaml is unreadable."""
        if not isinstance(self.settings, dict) or "objectives" not in self.settings:
            return None
        return objectives_of(self.settings)

    @property
    def metric(self) -> str:
        """The primary objective's metric: what "best" means for this run."""
        return primary(self.objectives) if self.objectives else "?"

    @property
    def best(self) -> dict[str, Any] | None:
        return best_row(self.rows, self.objectives) if self.objectives else None

    @property
    def constraints(self) -> list[Constraint]:
        return constraints_of(self.settings) if isinstance(self.settings, dict) else []

    @property
    def several(self) -> bool:
        return bool(self.objectives) and len(self.objectives) > 1

    @property
    def front(self) -> list[dict[str, Any]]:
        """The feasible non-dominated candidates so far (under several objectives)."""
        return pareto_rows(self.rows, self.objectives, self.constraints) if self.several else []

    def evaluations_to_best(self) -> int | None:
        best = self.best
        return None if best is None else next(i for i, r in enumerate(self.rows, 1) if r is best)


def resolve_run_dir(arg: str | Path) -> Path:
    """A run folder given as its path or as its name under ./results."""
    path = Path(arg)
    if not path.is_dir() and (Path(layout.RESULTS) / path).is_dir():
        path = Path(layout.RESULTS) / path
    if not path.is_dir():
        raise ArtefactError(f"{arg}: no such run folder (give results/RUN or the name of a run under results/)")
    return path


def all_run_dirs(results: str | Path = layout.RESULTS) -> list[Path]:
    """Every folder under `results` that looks like a run (run.yaml or generation folders)."""
    results = Path(results)
    if not results.is_dir():
        return []
    return [
        d
        for d in sorted(results.iterdir())
        if d.is_dir() and (Path(layout.run_config(d)).exists() or any(GEN_DIR.fullmatch(g.name) for g in d.iterdir()))
    ]


def planned_from_config(config_path: str | Path | None) -> dict[str, int]:
    """Planned generations per run name, from a config file (empty without one)."""
    if config_path is None:
        return {}
    return {name: run["generations"] for name, run in resolve_runs(load_config(config_path)).items()}


def _load(problems: list[str], reader, path: Path) -> Any:
    try:
        return reader(path)
    except (ArtefactError, OSError, UnicodeDecodeError) as e:
        problem = str(e) if str(path) in str(e) else f"{path}: {e}"
        if isinstance(e, CorruptArtefact):
            problem += "; delete it and run snakemake again to re-make it"
        problems.append(problem)
        return None


def table_row(row: dict[str, str]) -> dict[str, Any]:
    return {**row, "generation": int(row["generation"])}


def _row_from_files(spec: dict[str, Any], metrics: dict[str, Any], g: int, cand: str) -> dict[str, Any]:
    row = {k: spec.get(k) for k in ("run", "arch", "origin", "seed")}
    row.update({k: ("" if v is None else v) for k, v in metrics.items()})
    row.update(generation=g, candidate=cand)
    return row


def scan_run(rdir: str | Path, planned: int | None = None) -> RunScan:
    """Read one run folder; never raises for a broken file (see RunScan.problems)."""
    scan = RunScan(Path(rdir))
    rdir = scan.rdir
    settings = _load(scan.problems, read_yaml, Path(layout.run_config(rdir)))
    if isinstance(settings, dict):
        scan.settings = settings
        if "objectives" not in settings:
            scan.problems.append(f"{layout.run_config(rdir)}: written by an earlier version of snakenas "
                                 "(no objectives); snakemake runs this run again")
    elif settings is not None:
        scan.problems.append(f"{layout.run_config(rdir)}: not a run settings file")
    scan.generations = sorted(
        int(m.group(1)) for d in rdir.iterdir() if d.is_dir() and (m := GEN_DIR.fullmatch(d.name))
    )
    for g in scan.generations:
        scan.rows.extend(_scan_generation(scan, g))
    if planned is None and Path(layout.summary(rdir)).exists():
        summary = _load(scan.problems, read_json, Path(layout.summary(rdir)))
        if isinstance(summary, dict) and isinstance(summary.get("generations"), int):
            planned = summary["generations"]
    scan.planned_known = planned is not None
    present = max((g + 1 for g in scan.generations), default=None)
    scan.planned = max(planned, present or 0) if planned is not None else present
    return scan


def generations_text(scan: RunScan) -> str:
    """done/planned: "2/3"; "2/>=3" when only the folders present bound the plan; "0/?" with nothing."""
    if scan.planned is None:
        return f"{len(scan.done)}/?"
    return f"{len(scan.done)}/{'' if scan.planned_known else '>='}{scan.planned}"


def _scan_generation(scan: RunScan, g: int) -> list[dict[str, Any]]:
    rdir = scan.rdir
    table = Path(layout.table(rdir, g))
    if table.exists():
        rows = _load(scan.problems, read_tsv, table)
        if rows is not None:
            try:
                rows = [table_row(r) for r in rows]
                if all("status" in r and "arch" in r for r in rows):
                    scan.done.append(g)
                    return rows
            except (KeyError, ValueError):
                pass
            scan.problems.append(f"{table}: not a generation table (columns missing or malformed)")
    # No (readable) table yet: what the candidates' own files say.
    cdir = Path(layout.candidates_dir(rdir, g))
    specs = cdir.glob("c*.yaml") if cdir.is_dir() else []
    names = sorted(m.group(1) for p in specs if (m := CAND_FILE.fullmatch(p.name)))
    rows = []
    for cand in names:
        metrics_path = Path(layout.metrics(rdir, g, cand))
        if not metrics_path.exists():
            scan.pending += 1
            continue
        metrics = _load(scan.problems, read_json, metrics_path)
        spec = _load(scan.problems, read_yaml, Path(layout.spec(rdir, g, cand)))
        if not isinstance(metrics, dict) or "status" not in metrics:
            if metrics is not None:
                scan.problems.append(f"{metrics_path}: no status")
            continue
        if not isinstance(spec, dict) or "arch" not in spec:
            if spec is not None:
                scan.problems.append(f"{layout.spec(rdir, g, cand)}: not a candidate spec")
            continue
        rows.append(_row_from_files(spec, metrics, g, cand))
    return rows


# -- formatting ---------------------------------------------------------------------


def _num(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{number:.2f}".rstrip("0").rstrip(".") if math.isfinite(number) else "-"


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(value: Any) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "-"
    return f"{int(number):,}" if math.isfinite(number) else "-"


def text_table(header: Sequence[str], rows: Iterable[Sequence[str]], right: Sequence[bool] | None = None) -> str:
    """Columns padded to their widest cell; `right` aligns numeric columns right."""
    rows = [list(map(str, r)) for r in rows]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    right = right or [False] * len(header)
    lines = []
    for r in [list(header), *rows]:
        cells = [c.rjust(w) if a else c.ljust(w) for c, w, a in zip(r, widths, right)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _score_columns(scans: Sequence[RunScan]) -> tuple[str, str]:
    """Headers of the best score and its test counterpart: named after the runs'
    primary metric when they share one."""
    metrics = {s.metric for s in scans}
    if len(metrics) != 1:
        return "best", "test"
    metric = metrics.pop()
    return f"best {metric}", reported_on_test(metric) or "test"


def _score(scan: RunScan, best: dict[str, Any] | None, shared: bool) -> tuple[str, str]:
    """The best candidate's primary metric and its test counterpart, as cells."""
    if best is None:
        return "-", "-"
    test = reported_on_test(scan.metric)
    value, test_value = _num(best.get(scan.metric)), _num(best.get(test)) if test else "-"
    return (value, test_value) if shared else (f"{scan.metric} {value}", test_value)


def front_columns(scans: Sequence[RunScan]) -> dict[str, str]:
    """Run name -> "front size / hypervolume" cells, for runs with several objectives.
    Runs with the same objectives share their normalisation (the ideal and nadir of
    their fronts together), so their hypervolumes compare."""
    cells: dict[str, str] = {}
    groups: dict[tuple, list[RunScan]] = {}
    for s in scans:
        if s.several:
            groups.setdefault(tuple(o["metric"] + o["direction"] for o in s.objectives), []).append(s)
    for members in groups.values():
        fronts = {s.name: s.front for s in members}  # sorted once per run: the front of a front is itself
        points = [values(r, members[0].objectives) for front in fronts.values() for r in front]
        if not points:
            cells.update({s.name: "0" for s in members})
            continue
        ideal, nadir = ideal_and_nadir(points)
        for s in members:
            hv = front_hypervolume(fronts[s.name], s.objectives, s.constraints, ideal, nadir)
            cells[s.name] = f"{len(fronts[s.name])} / {hv:.3f}"
    return cells


def status_text(scans: Sequence[RunScan]) -> str:
    best_header, test_header = _score_columns(scans)
    shared = best_header != "best"
    fronts = front_columns(scans)
    header = ["run", "strategy", "space", "generations", "ok", "failed", "running/pending",
              best_header, test_header, "best arch"]
    right = [False, False, False, True, True, False, True, True, True, False]
    if fronts:
        header.insert(-1, "front / hypervolume")
        right.insert(-1, True)
    rows = []
    for s in scans:
        failed = sum(s.failed.values())
        detail = ", ".join(f"{k} {v}" for k, v in s.failed.items())
        best = s.best
        rows.append([
            s.name,
            s.setting("strategy"),
            s.setting("space"),
            generations_text(s),
            str(s.ok),
            f"{failed} ({detail})" if failed else "0",
            str(s.pending),
            *_score(s, best, shared),
            *([fronts.get(s.name, "-")] if fronts else []),
            "-" if best is None else str(best.get("arch")),
        ])
    lines = [text_table(header, rows, right)]
    for s in scans:
        lines.extend(f"problem in {s.name}: {p}" for p in s.problems)
    return "\n".join(lines)


# -- best ---------------------------------------------------------------------------


def best_text(scan: RunScan, rule: str | None = None) -> str:
    """best.yaml as written by the report; without a report, the best evaluated so far.
    With a pick `rule` (nas.objectives.pick: max:METRIC, min:METRIC, knee), the
    member of the feasible front it picks, from the generation files."""
    best_path = Path(layout.best(scan.rdir))
    if rule is not None:
        if not scan.objectives:
            return f"# {layout.run_config(scan.rdir)} unreadable: no objectives to pick by\n"
        front = pareto_rows(scan.rows, scan.objectives, scan.constraints)
        chosen = pick(scan.rows, scan.objectives, scan.constraints, rule)
        head = f"# picked by {rule} from the feasible front of {len(front)} of {len(scan.rows)} candidates\n"
        return _candidate_text(scan, chosen, head)
    if best_path.exists():
        try:
            data = read_yaml(best_path)
            if isinstance(data, dict):
                return best_path.read_text(encoding="utf-8")
        except ArtefactError as e:
            scan.problems.append(str(e))
    reason = f"{best_path} is not readable" if best_path.exists() else f"no report yet ({best_path} missing)"
    head = f"# {reason}: best of {len(scan.rows)} candidates evaluated so far, from the generation files\n"
    return _candidate_text(scan, scan.best, head)


def final_text(scan: RunScan) -> str:
    """A comment on the run's final model, where its final step has chosen one: the
    search's best is one short training, the winner the best of its re-trainings."""
    path = Path(layout.final_table(scan.rdir))
    if not path.exists():
        return ""
    try:
        winner = [r for r in read_tsv(path) if r.get("winner") == "yes"]
    except ArtefactError as e:
        scan.problems.append(str(e))
        return ""
    if not winner:
        return f"# final step: no re-trained candidate ended ok ({path})\n"
    w, metric = winner[0], scan.metric
    try:
        spread = f" ± {float(w[f'{metric}_std']):.2f}" if w.get(f"{metric}_std") else ""
        count = f" over {w['repeats']} re-trainings" if w.get("repeats") else ""
        return (f"# final model: {w['candidate']} ({w['source']}) {w['arch']}: re-trained {metric} "
                f"{float(w[metric]):.2f}{spread}{count}, search {float(w[f'search_{metric}']):.2f}; "
                f"{layout.final_dir(scan.rdir)}/model.yaml says how to load it\n")
    except (KeyError, ValueError):
        scan.problems.append(f"{path}: the winner's row lacks {metric} or its search score")
        return ""


def _candidate_text(scan: RunScan, best: dict[str, Any] | None, head: str) -> str:
    """A candidate's spec with its metrics, as YAML under `head`."""
    if best is None:
        return head + dump_yaml({"run": scan.name, "note": "no candidate finished with status ok"})
    g, cand = best["generation"], best["candidate"]
    spec = None
    try:
        spec = read_yaml(layout.spec(scan.rdir, g, cand))
    except ArtefactError as e:
        scan.problems.append(str(e))
    metrics = {k: v for k, v in best.items() if k not in (*LEADING_COLUMNS, *TRAILING_COLUMNS)}
    try:
        metrics = read_json(layout.metrics(scan.rdir, g, cand))
    except ArtefactError:
        pass  # the table row holds the same numbers
    if not isinstance(spec, dict):
        spec = {"run": scan.name, "generation": g, "candidate": cand, "arch": best["arch"]}
    return head + dump_yaml({**spec, "metrics": metrics})


# -- compare ------------------------------------------------------------------------


def compare_text(scans: Sequence[RunScan]) -> str:
    best_header, test_header = _score_columns(scans)
    shared = best_header != "best"
    fronts = front_columns(scans)
    header = ["run", "strategy", "space", "evaluator", "seed", "generations", "evaluations", "failed",
              best_header, test_header, "params", "evaluations to best", "task"]
    right = [False, False, False, False, True, True, True, True, True, True, True, True, False]
    if fronts:
        header.insert(-1, "front / hypervolume")
        right.insert(-1, True)
    rows = []
    for s in scans:
        best = s.best
        rows.append([
            s.name,
            s.setting("strategy"),
            s.setting("space"),
            s.setting("evaluator"),
            str((s.settings or {}).get("seed", "?")),
            generations_text(s),
            str(len(s.rows)),
            str(sum(s.failed.values())),
            *_score(s, best, shared),
            "-" if best is None else _count(best.get("params")),
            str(s.evaluations_to_best() or "-"),
            *([fronts.get(s.name, "-")] if fronts else []),
            str((s.settings or {}).get("task_id", "?")),
        ])
    lines = [text_table(header, rows, right)]
    for s in scans:
        best = s.best
        if best is not None:
            lines.append(f"{s.name} best: {best['arch']} (gen_{best['generation']:03d}/{best['candidate']})")
    for s in scans:
        lines.extend(f"problem in {s.name}: {p}" for p in s.problems)
    return "\n".join(lines)


def plot_compare(scans: Sequence[RunScan], path: str | Path) -> None:
    """The best so far of each run's primary metric against evaluations, one line per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for s in scans:
        curve = best_so_far(s.rows, s.objectives) if s.objectives else []
        name = s.name if s.name == s.setting("strategy") else f"{s.name} ({s.setting('strategy')})"
        ax.step(range(1, len(curve) + 1), curve, where="post", lw=2, label=name)
    metrics = {s.metric for s in scans}
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("evaluations")
    ax.set_ylabel(f"best {label(metrics.pop())} so far" if len(metrics) == 1 else "best so far")
    ax.set_title("best so far: " + ", ".join(s.name for s in scans))
    ax.grid(alpha=0.3)
    if scans:
        ax.legend(loc="lower right")
    fig.tight_layout()
    write_figure(path, fig)


# -- overview page (the Snakemake report shows HTML, not TSV or YAML) ----------------

def score_columns(scan: RunScan) -> tuple[str, ...]:
    """The primary metric and its test counterpart: what the overview page shows of a candidate."""
    return tuple(c for c in (scan.metric, reported_on_test(scan.metric)) if c and c != "?")


COUNT_COLUMNS = ("params", "flops")


# The look of every page snakenas writes (overview.html, the final model's card.html).
PAGE_STYLE = ("body{font-family:sans-serif;font-size:14px} table{border-collapse:collapse;margin-bottom:1em}"
              " td,th{border:1px solid #ccc;padding:2px 6px;text-align:left} code{font-size:13px}"
              " pre{background:#f4f4f4;padding:1em}")


def html_page(title: str, parts: Sequence[str]) -> str:
    """A whole page: `title` in its head, `parts` (HTML fragments) as its body."""
    head = f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">\n<title>{html.escape(title)}</title>'
    return "\n".join([head, f"<style>{PAGE_STYLE}</style>", "</head><body>", *parts, "</body></html>\n"])


def html_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>\n" for r in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"


def load_importance(path: str | Path, problems: list[str]) -> list[dict[str, Any]]:
    """importance.tsv's rows with numbers as numbers (nas.importance's form); [] with a
    problem named when the file is missing or unreadable."""
    path = Path(path)
    if not path.exists():
        problems.append(f"{path}: missing (the report writes it)")
        return []
    rows = _load(problems, read_tsv, path)
    try:
        return [{**r, **{k: float(r[k]) for k in ("effect", "std", "low", "high")}, "count": int(r["count"])}
                for r in rows or []]
    except (KeyError, TypeError, ValueError):
        problems.append(f"{path}: not an importance table (columns missing or malformed)")
        return []


def _png_html(path: Path, alt: str) -> str:
    """The picture inline, as a data URI (relative links break inside Snakemake's
    report); a line saying so when it cannot be read."""
    try:
        data = path.read_bytes()
    except OSError:
        return f"<p>{html.escape(alt)}: picture missing ({html.escape(str(path))}).</p>"
    if not data.startswith(b"\x89PNG"):
        return f"<p>{html.escape(alt)}: {html.escape(str(path))} is not a PNG picture.</p>"
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return f'<p><img src="{src}" alt="{html.escape(alt)}" style="max-width:100%"></p>'


def best_predictions(rdir: str | Path, best: dict[str, Any]) -> Path | None:
    """The best candidate's predictions.png (a segmentation run's; with repeats, its
    first training's), None when it has none."""
    try:
        folder = layout.eval_dir(rdir, int(best["generation"]), best["candidate"])
    except (KeyError, TypeError, ValueError):
        return None
    for path in (layout.predictions_in(folder), layout.predictions_in(layout.repeat_dir(folder, 0))):
        if Path(path).is_file():
            return Path(path)
    return None


def interpretability_html(architecture_png: Path, importance_rows: list[dict[str, Any]], importance_png: Path,
                          metric: str) -> str:
    """The architecture's picture and the run's operation importance (plot and table), as
    an HTML fragment: the run's overview page and the final model's card both show it.
    Never raises: a missing picture gives a line saying so."""
    esc = html.escape
    parts = ["<h2>Architecture picture</h2>", _png_html(Path(architecture_png), "architecture")]
    parts.append("<h2>Operation importance</h2>")
    try:
        candidates = fitted(importance_rows)
    except (KeyError, TypeError, ValueError):  # counts missing or malformed: never raise here
        candidates = 0
    if not importance_rows:
        parts.append("<p>Too few evaluated candidates to say which choices moved the objective.</p>")
        return "\n".join(parts)
    parts.append(
        f"<p>How much each choice at each position moved <b>{esc(metric)}</b> against that position's "
        f"average, from a ridge regression on one-hot genes over the search's {_count(candidates)} ok candidates; the "
        "interval is the 5th to 95th percentile of the effect refitted on bootstrap resamples, and n how "
        "many candidates had the choice. These are associations in what the search evaluated, not causes.</p>")
    parts.append(_png_html(Path(importance_png), "operation importance"))
    parts.append(html_table(["position", "choice", f"effect on {label(metric)}", "90 % interval", "std", "n"], [
        [r.get("position", "?"), r.get("choice", "?"), _num(r.get("effect")),
         f"{_num(r.get('low'))} to {_num(r.get('high'))}" if math.isfinite(_float(r.get("low"))) else "-",
         _num(r.get("std")), _count(r.get("count"))] for r in importance_rows]))
    return "\n".join(parts)


def overview_html(scan: RunScan) -> str:
    """One page per run: settings, best architecture (its picture too), the operation
    importance of the search, and every generation's table. Pictures are read from the
    run folder (architecture.png, importance.png, importance.tsv: the report writes them
    first); a missing one is a line on the page, never an error."""
    esc = html.escape
    best = scan.best
    scores = score_columns(scan)
    parts = [
        f"<h1>Run {esc(scan.name)}</h1>",
        f"<p>strategy <b>{esc(scan.setting('strategy'))}</b>, space <b>{esc(scan.setting('space'))}</b>, "
        f"evaluator <b>{esc(scan.setting('evaluator'))}</b>; {len(scan.done)} generations, "
        f"{len(scan.rows)} evaluations ({scan.ok} ok"
        + "".join(f", {v} {esc(k)}" for k, v in scan.failed.items()) + ").</p>",
        "<h2>Best architecture</h2>",
    ]
    if best is None:
        parts.append("<p>No candidate finished with status ok.</p>")
    else:
        parts.append(f"<p><code>{esc(str(best['arch']))}</code></p>")
        parts.append(html_table(
            ["generation", "candidate", *scores, "params", "flops", "evaluations to reach it"],
            [[best["generation"], best["candidate"], *(_num(best.get(c)) for c in scores),
              _count(best.get("params")), _count(best.get("flops")), scan.evaluations_to_best()]],
        ))
        predictions = best_predictions(scan.rdir, best)
        if predictions is not None:
            parts.append("<h3>Its predictions on the first validation images</h3>")
            parts.append("<p>Each row: the image, its true mask, the best candidate's predicted mask "
                         "(one colour per class, background black, ignored pixels white).</p>")
            parts.append(_png_html(predictions, "predictions of the best candidate"))
    importance = load_importance(layout.importance_table(scan.rdir), scan.problems)
    parts.append(interpretability_html(Path(layout.architecture_plot(scan.rdir)), importance,
                                       Path(layout.importance_plot(scan.rdir)), scan.metric))
    if scan.several:
        metrics, front = [o["metric"] for o in scan.objectives], scan.front
        parts.append(f"<h2>Feasible front ({len(front)} candidates)</h2>")
        parts.append(html_table(["generation", "candidate", "arch", *metrics], [
            [r["generation"], r["candidate"], r["arch"], *(_num(r.get(m)) for m in metrics)] for r in front]))
    columns = ("candidate", "arch", "status", *scores, "params", "flops", "train_seconds", "origin", "parents")
    for g in scan.generations:
        rows = [r for r in scan.rows if r["generation"] == g]
        state = "" if g in scan.done else " (not finished)"
        parts.append(f"<h2>Generation {g}{state}</h2>")
        parts.append(html_table(columns, [
            [_num(r.get(c)) if c in scores else _count(r.get(c)) if c in COUNT_COLUMNS else r.get(c, "")
             for c in columns]
            for r in rows
        ]))
    parts.extend(f"<p>problem: {esc(p)}</p>" for p in scan.problems)
    return html_page(scan.name, parts)


# -- command line ---------------------------------------------------------------------


def main(args: Any) -> int:
    """`status`, `best` and `compare` of nas.cli; 1 when a file was broken, after showing the rest."""
    if args.command == "best":
        scan = scan_run(resolve_run_dir(args.run_dir))
        print(best_text(scan, args.pick) + final_text(scan), end="")
        for p in scan.problems:
            print(f"problem: {p}", file=sys.stderr)
        return 1 if scan.problems else 0
    dirs = [resolve_run_dir(d) for d in args.run_dirs] if args.run_dirs else all_run_dirs()
    if not dirs:
        print(f"no runs under {layout.RESULTS}/", file=sys.stderr)
        return 1
    planned = planned_from_config(args.config)
    scans = []
    for d in dirs:
        scans.append(scan_run(d, planned.get(d.name)))
    if args.command == "status":
        print(status_text(scans))
    else:
        print(compare_text(scans))
        plot_compare(scans, args.out)
        print(f"plot: {args.out}")
    return 1 if any(s.problems for s in scans) else 0
