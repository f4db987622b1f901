"""The final model: the search's best candidates trained again, the winner trained for export.

A search trains each candidate once, briefly; its best is partly a lucky
training. A run with a `final:` section goes on after its report
(rules/final.smk), each step a `snakenas final ...` command:

    final/final.yaml      the run's `final:` section, complete (rule final_settings)
    propose  history.tsv, final.yaml ──► final/candidates/k{i}.yaml   the run's top candidates,
                                         with the final recipe (epochs, repeats) and fresh seeds
    train    (the search's train step, one job each, repeats kept) ──► final/evals/k{i}/metrics.json
    table    final/evals/*/metrics.json ──► final/final.tsv   each one's mean and std, its
                                         search-time score beside, the winner marked
    model    final.tsv ──► weights.pt (the winner trained on final.train_on, kept before any
                         export), model.pt, model.pt2, model.onnx, model.yaml, architecture.png, card.html

The top candidates are the run's best by its objective; under several
objectives, `final.pick`'s choices from the front (objectives.top_rows). The
winner is the re-trained candidate with the best mean of the primary
objective on the validation split. With `train_on: train` the exported
network is the winner's first re-training (the same seed); with
`train_on: train+val` it is trained on both splits and only its test metrics
are reported.
"""

from __future__ import annotations

import html
import io
import math
import sys
from pathlib import Path
from typing import Any, Callable

from nas import layout
from nas.config import load_run
from nas.evaluators import evaluator_for
from nas.evaluators.repeats import fingerprint, repeat_spec
from nas.export import CARD_FORMAT, export_model, read_model_card, write_model_card
from nas.inspect import html_page, html_table, interpretability_html, load_importance
from nas.io import (CorruptArtefact, atomic_write_bytes, atomic_write_text, read_json, read_tsv,
                    read_yaml, write_dir, write_tsv, write_yaml)
from nas.objectives import constraints_of, fitness, label, number, objectives_of, primary, top_rows
from nas.registry import load
from nas.report import plot_architecture
from nas.seeding import int_seed
from nas.spaces import make_space
from nas.steps import read_spec

TRAIN_MODEL = "nas.evaluators.training:train_model"
# Validation images the exports are checked on against the PyTorch network.
CHECK_IMAGES = 64
# The spec keys of a final candidate beyond a search spec's.
SOURCE, SEARCH = "source", "search"


class FinalError(ValueError):
    """The final step cannot go on (no candidate to re-train, no winner); nothing is lost."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def read_final(rdir: str | Path) -> dict[str, Any]:
    final = read_yaml(layout.final_config(rdir))
    if not isinstance(final, dict) or not {"top", "epochs", "repeats", "train_on"} <= set(final):
        raise CorruptArtefact(layout.final_config(rdir), "not a final section of this version")
    return final


def _cell(text: Any) -> int | float | None:
    """A table cell as a number (a whole one as an int), None when empty."""
    value = number(text)
    if not math.isfinite(value):
        return None
    return int(value) if value.is_integer() and "." not in str(text) else value


def propose(rdir: str | Path) -> list[dict[str, Any]]:
    """The run's top candidates as specs of their final re-training."""
    run, final = load_run(rdir), read_final(rdir)
    rows = read_tsv(layout.history(rdir))
    objectives, constraints = objectives_of(run), constraints_of(run)
    top = top_rows(rows, objectives, constraints, final["top"], final.get("pick"))
    if not top:
        statuses = sorted({r["status"] for r in rows})
        raise FinalError(f"run {run['name']}: no candidate finished with status ok"
                         f"{' (and feasible)' if constraints else ''} ({len(rows)} evaluated, statuses: "
                         f"{', '.join(statuses) or 'none'}): there is nothing to re-train; "
                         "the search's results are kept as they are")
    if len(top) < final["top"]:
        raise FinalError(f"run {run['name']}: final.top is {final['top']}, but only {len(top)} candidates "
                         f"can be taken; set final.top: {len(top)}")
    specs = []
    for k, row in enumerate(top):
        spec = read_spec(layout.spec(rdir, int(row["generation"]), row["candidate"]))
        spec.pop("trace", None)
        spec.update(
            candidate=layout.final_name(k),
            seed=int_seed(run["seed"], k, "final"),
            training={**spec["training"], "epochs": final["epochs"], "repeats": final["repeats"]},
        )
        spec[SOURCE] = f"{layout.gen_name(int(row['generation']))}/{row['candidate']}"
        spec[SEARCH] = {o["metric"]: number(row.get(o["metric"])) for o in objectives}
        specs.append(spec)

    def write_specs(folder: Path) -> None:
        for spec in specs:
            write_yaml(folder / f"{spec['candidate']}.yaml", spec)

    write_dir(layout.final_candidates_dir(rdir), write_specs)
    for s in specs:
        _stderr(f"{s['candidate']} {s[SOURCE]} {s['arch']}")
    return specs


def final_columns(run: dict[str, Any], spec: dict[str, Any]) -> tuple[str, ...]:
    """final.tsv's columns: which candidate, its search-time scores, its re-trained metrics."""
    searched = tuple(f"search_{o['metric']}" for o in objectives_of(run))
    return ("candidate", SOURCE, "arch", *searched, *evaluator_for(spec).table_columns, "winner")


def table(rdir: str | Path) -> list[dict[str, Any]]:
    """final.tsv: every re-trained candidate, the winner marked."""
    run, final = load_run(rdir), read_final(rdir)
    specs = [read_spec(layout.final_spec(rdir, k)) for k in range(final["top"])]
    objectives = objectives_of(run)
    rows = []
    for k, spec in enumerate(specs):
        path = layout.metrics_in(layout.final_eval_dir(rdir, k))
        metrics = read_json(path)
        if not isinstance(metrics, dict) or "status" not in metrics:
            raise CorruptArtefact(path, "no status")
        row = {"candidate": spec["candidate"], SOURCE: spec[SOURCE], "arch": spec["arch"],
               **{f"search_{m}": v for m, v in spec[SEARCH].items()},
               **{c: metrics.get(c) for c in evaluator_for(spec).table_columns}}
        rows.append(row)
    # The winner by the mean of the primary objective (the re-trained metrics carry its name).
    ranked = [r for r in rows if r["status"] == "ok" and math.isfinite(fitness(r, objectives[:1]))]
    winner = max(ranked, key=lambda r: fitness(r, objectives[:1]), default=None)
    for r in rows:
        r["winner"] = "yes" if r is winner else ""
    write_tsv(layout.final_table(rdir), final_columns(run, specs[0]), rows)
    metric = primary(objectives)
    for r in rows:
        _stderr(f"{r['candidate']} {r[SOURCE]} search {metric} {r[f'search_{metric}']:.2f} -> re-trained "
                f"{number(r.get(metric)):.2f} ± {number(r.get(f'{metric}_std')):.2f} {r['winner']}")
    return rows


def winner_of(rdir: str | Path) -> dict[str, str]:
    rows = read_tsv(layout.final_table(rdir))
    winner = [r for r in rows if r.get("winner") == "yes"]
    if not winner:
        raise FinalError(f"{layout.final_table(rdir)}: no re-trained candidate finished with status ok "
                         f"(statuses: {', '.join(sorted({r['status'] for r in rows}))}); there is no model "
                         "to export; the re-trainings are kept in final/evals/")
    return winner[0]


def _weights_key(spec: dict[str, Any], train_on: str) -> dict[str, Any]:
    """What the kept weights were trained from: reused only by the same."""
    return {"fingerprint": fingerprint(spec), "train_on": train_on}


def trained(folder: str | Path, spec: dict[str, Any], train_on: str,
            log: Callable[[str], None] = _stderr) -> tuple[Any, dict[str, Any], Any]:
    """(network, metrics, splits) of the winner trained for export; kept in weights.pt,
    so that an export that fails (or is changed) does not cost the training again."""
    import torch

    evaluator = evaluator_for(spec)
    task = evaluator.data_task()
    key = _weights_key(spec, train_on)
    path = Path(layout.final_weights(folder))
    if path.is_file():
        try:
            kept = torch.load(path, map_location="cpu", weights_only=True)
            if {k: kept.get(k) for k in key} == key:
                space = make_space(spec["space"])
                splits = task.splits(int(spec["run_seed"]))
                model = task.model(space, space.from_string(spec["arch"]), splits.info)
                model.load_state_dict(kept["state_dict"])
                log(f"{path}: the winner's trained weights kept from an earlier job, not trained again")
                return model.eval(), dict(kept["metrics"]), splits
            log(f"{path}: ignored, trained from another spec; training again")
        except Exception as e:  # a damaged file fails in many ways; each means: train again
            log(f"{path}: ignored, unreadable ({type(e).__name__}: {e}); training again")
    result, model, splits = load(TRAIN_MODEL)(spec, evaluator, train_on, log)
    if result.metrics["status"] != "ok" or model is None:
        raise FinalError(f"the winner {spec['arch']} ended with status {result.metrics['status']} when trained "
                         f"on {train_on} for export; its re-trainings are kept in final/evals/")
    buffer = io.BytesIO()
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float, str)) and not (
        isinstance(v, float) and math.isnan(v))}
    torch.save({**key, "state_dict": model.state_dict(), "metrics": metrics}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return model, metrics, splits


def model(rdir: str | Path) -> dict[str, Any]:
    """The winner trained on final.train_on and exported; its model card and page."""
    import torch

    run, final = load_run(rdir), read_final(rdir)
    winner = winner_of(rdir)
    spec = read_spec(layout.final_spec(rdir, winner["candidate"]))
    folder = layout.final_dir(rdir)
    # Repeat 0's seed: trained on `train`, this is the winner's first re-training.
    one = repeat_spec(spec, 0)
    network, metrics, splits = trained(folder, one, final["train_on"])
    count = min(CHECK_IMAGES, len(splits.val))
    example = torch.stack([splits.val[i][0] for i in range(count)])
    exports = export_model(network, example, folder, onnx=final["onnx"])
    objectives = objectives_of(run)
    retrained = {c: _cell(winner.get(c)) for c in final_columns(run, spec)
                 if c not in ("candidate", SOURCE, "arch", "winner", "status", "device") and not c.startswith("search_")}
    card = {
        "format": CARD_FORMAT,
        "run": run["name"],
        "arch": spec["arch"],
        "space": spec["space"],
        "task": spec["task"],
        "input_shape": list(splits.info.input_shape),
        "classes": list(splits.classes or (str(i) for i in range(splits.info.num_classes))),
        "preprocess": splits.preprocess,
        "trained_on": final["train_on"],
        "metrics": {
            # The exported network's own: on train+val only its test metrics mean anything.
            "exported": {k: v for k, v in metrics.items() if k.startswith(("val_", "test_"))},
            # The winner's re-trainings (mean, std, count) and its single search-time training.
            "retrained": {k: v for k, v in retrained.items() if v is not None},
            "search": dict(spec[SEARCH]),
            "objectives": [o["metric"] for o in objectives],
        },
        "training": {**one["training"], "seed": one["seed"]},
        "source": spec[SOURCE],
        "retrained_times": final["repeats"],
        "exports": exports,
    }
    write_model_card(folder, card)
    space = make_space(spec["space"])
    title = f"{run['name']}: final model ({spec[SOURCE]})"
    plot_architecture(space, space.from_string(spec["arch"]), title, layout.architecture_plot(folder))
    write_card_html(rdir, run, card)
    return card


def write_card_html(rdir: str | Path, run: dict[str, Any], card: dict[str, Any]) -> None:
    """card.html: the model card as one page (Snakemake's --report shows it inline)."""
    folder = layout.final_dir(rdir)
    metric = primary(objectives_of(run))
    problems: list[str] = []
    importance = load_importance(layout.importance_table(rdir), problems)
    for problem in problems:  # the card is still written, saying what it lacks
        _stderr(problem)
    rows = read_tsv(layout.final_table(rdir))
    columns = list(rows[0]) if rows else []
    loading = read_model_card(folder).get("load", "")
    exported = ", ".join(f"{html.escape(k)} {v:.4g}" if isinstance(v, float) else f"{html.escape(k)} {v}"
                         for k, v in card["metrics"]["exported"].items())
    esc = html.escape
    parts = [
        f"<h1>{esc(run['name'])}: the final model</h1>",
        f"<p><b>{esc(card['arch'])}</b> ({esc(card['space']['name'])}), from the search's {esc(card['source'])}; "
        f"trained on {esc(card['trained_on'])} for {card['training']['epochs']} epochs: {exported}.</p>",
        "<h2>The re-trained candidates</h2>",
        f"<p>The run's top {len(rows)} candidates, each trained {card['retrained_times']} times with fresh seeds "
        f"for {card['training']['epochs']} epochs; {esc(label(metric))}: the mean over the re-trainings, beside "
        f"its search-time score (search_{esc(metric)}).</p>",
        html_table(columns, [[r[c] for c in columns] for r in rows]),
        interpretability_html(Path(layout.architecture_plot(folder)), importance, Path(layout.importance_plot(rdir)),
                              metric),
        "<h2>Loading it</h2>",
        f"<pre>{esc(loading)}</pre>",
    ]
    page = html_page(f"{run['name']}: final model", parts)
    atomic_write_text(layout.card_html(folder), page)
