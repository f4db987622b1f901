# One search = run settings, then per generation: propose (-> screen) -> evaluate
# -> aggregate; then a report. Paths come from nas/layout.py. An evaluator evaluates either one
# candidate per job (rule train) or a whole generation per job (the evaluate_*
# rules below, for a table look-up): both write the same evals/{c}/ files.

include: "common.smk"


wildcard_constraints:
    run=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    g=r"\d\d\d+",
    c=r"c\d\d+",


# Light steps stay on the submitting machine when a cluster executor is used.
localrules:
    run_settings,
    aggregate,
    end_of_block,
    report,


rule run_settings:
    output:
        layout.run_config(RUN),
    params:
        # Everything that defines the results, and nothing else: changing it
        # re-runs the search; raising `generations` extends it instead.
        settings=lambda wc: frozen(run_of(wc)),
    log:
        layout.log(RUN, "settings"),
    run:
        write_yaml(output[0], params.settings)


# propose writes the generation's candidates; for a run screened by a
# zero-cost proxy, its proposals (candidates / keep of them) instead, which one
# job per generation (rule screen) scores, networks built but never trained,
# keeping the candidates, best first. A rule's output is fixed: one rule each.
for name, names, folder in (
    ("propose", [n for n in RUNS if n not in SCREENED], layout.candidates_dir),
    ("propose_proposals", list(SCREENED), layout.proposals_dir),
):

    rule:
        name:
            name
        wildcard_constraints:
            run=runs_matching(names),
        input:
            settings=layout.run_config(RUN),
            state=previous_state,
            # A warm start's meta-model and task features (rules/meta.smk).
            meta=lambda wc: warm_start_inputs(run_of(wc), wc.g),
        output:
            directory(folder(RUN, "{g}")),
        log:
            layout.log(RUN, "propose", "{g}"),
        benchmark:
            layout.benchmark(RUN, "propose", "{g}")
        # Light: it stays on the submitting machine when a cluster executor is used.
        localrule: True
        params:
            rdir=run_dir,
        conda:
            SOFTWARE
        shell:
            "snakenas propose {params.rdir} --generation {wildcards.g} 2> {log}"


rule screen:
    wildcard_constraints:
        run=runs_matching(SCREENED),
    input:
        settings=layout.run_config(RUN),
        proposals=layout.proposals_dir(RUN, "{g}"),
    output:
        candidates=directory(layout.candidates_dir(RUN, "{g}")),
        table=layout.screen_table(RUN, "{g}"),
    log:
        layout.log(RUN, "screen", "{g}"),
    benchmark:
        layout.benchmark(RUN, "screen", "{g}")
    # Scoring builds networks (torch) unless every screen is by params or flops.
    localrule: not any(needs_network([p]) for p in SCREENED.values())
    retries: EXECUTION["train_retries"]
    resources:
        **TRAIN_RESOURCES,
    params:
        rdir=run_dir,
    conda:
        SOFTWARE
    shell:
        "snakenas screen {params.rdir} --generation {wildcards.g} 2> {log}"


rule train:
    wildcard_constraints:
        run=runs_matching(n for n, e in EVALUATORS.items() if not e.per_generation),
    input:
        candidates=layout.candidates_dir(RUN, "{g}"),
        evaluator=evaluator_inputs,
    output:
        metrics=layout.metrics(RUN, "{g}", "{c}"),
        epochs=layout.epochs(RUN, "{g}", "{c}"),
    log:
        layout.log(RUN, "train", "{g}", "{c}"),
    benchmark:
        layout.benchmark(RUN, "train", "{g}", "{c}")
    # On a cluster, `--group-components train_{run}_{g}=N` packs N training
    # jobs of a generation into one cluster job (config/profiles/slurm). One
    # group per generation: a group spanning generations would depend on
    # itself through propose and aggregate. Locally groups are ignored.
    group:
        "train_{run}_{g}"
    threads: lambda wc: run_of(wc)["training"].get("threads", 1)
    retries: EXECUTION["train_retries"]
    resources:
        **TRAIN_RESOURCES,
    params:
        shared=shared_trainer,
        checkpoint="--checkpoint" if EXECUTION["checkpoints"] else "",
    conda:
        SOFTWARE
    shell:
        "snakenas train {input.candidates}/{wildcards.c}.yaml --out $(dirname {output.metrics})"
        " {params.checkpoint} {params.shared} 2> {log}"


# One job per generation for an evaluator that evaluates a whole generation at
# once (a table look-up): one rule per generation size (common.smk).
for (size, which), names in per_generation_sizes():

    rule:
        name:
            f"evaluate_{which}_{size}"
        wildcard_constraints:
            run=runs_matching(names),
            # Generation 0, or any other (three or more digits, not 000).
            g="000" if which == "first" else r"(?!000(?!\d))\d\d\d+",
        input:
            settings=layout.run_config(RUN),
            candidates=layout.candidates_dir(RUN, "{g}"),
            evaluator=evaluator_inputs,
        output:
            metrics=[layout.metrics(RUN, "{g}", c) for c in range(size)],
            epochs=[layout.epochs(RUN, "{g}", c) for c in range(size)],
        log:
            layout.log(RUN, "evaluate", "{g}"),
        benchmark:
            layout.benchmark(RUN, "evaluate", "{g}")
        localrule: not any(EVALUATORS[n].needs_torch for n in names)
        retries: EXECUTION["train_retries"]
        resources:
            **TRAIN_RESOURCES,
        params:
            rdir=run_dir,
        conda:
            SOFTWARE
        shell:
            "snakenas evaluate {params.rdir} --generation {wildcards.g} 2> {log}"


rule aggregate:
    input:
        settings=layout.run_config(RUN),
        candidates=layout.candidates_dir(RUN, "{g}"),
        metrics=generation_metrics,
        state=previous_state,
    output:
        table=layout.table(RUN, "{g}"),
        state=directory(layout.state_dir(RUN, "{g}")),
    log:
        layout.log(RUN, "aggregate", "{g}"),
    benchmark:
        layout.benchmark(RUN, "aggregate", "{g}")
    params:
        rdir=run_dir,
    conda:
        SOFTWARE
    shell:
        "snakenas aggregate {params.rdir} --generation {wildcards.g} 2> {log}"


# The last generation of a block of a long run has finished: Snakemake plans
# the next block once this has run (nas/blocks.py). Its file says so to a
# person; the workflow only asks whether it is there.
checkpoint end_of_block:
    input:
        table=layout.table(RUN, "{g}"),
        state=layout.state_dir(RUN, "{g}"),
    output:
        layout.end_of_block(RUN, "{g}"),
    params:
        block=lambda wc: {"generations": [int(wc.g) + 1 - BLOCK_LENGTH[wc.run], int(wc.g)],
                          "next": "planned when this file is there"},
    run:
        write_yaml(output[0], params.block)


rule report:
    input:
        settings=layout.run_config(RUN),
        tables=all_tables,
    output:
        # report(...): what `snakemake --report report.html` shows, one category per run.
        history=report(layout.history(RUN), caption="../report/history.rst", category="{run}", labels={"run": "{run}", "result": "history table"}),
        summary=layout.summary(RUN),
        best=report(layout.best(RUN), caption="../report/best.rst", category="{run}", labels={"run": "{run}", "result": "best architecture"}),
        plot=report(layout.progress_plot(RUN), caption="../report/progress.rst", category="{run}", labels={"run": "{run}", "result": "progress plot"}),
        overview=report(layout.overview(RUN), caption="../report/overview.rst", category="{run}", labels={"run": "{run}", "result": "generation tables"}),
        pareto=report(layout.pareto_table(RUN), caption="../report/pareto_table.rst", category="{run}", labels={"run": "{run}", "result": "pareto front table"}),
        pareto_plot=report(layout.pareto_plot(RUN), caption="../report/pareto.rst", category="{run}", labels={"run": "{run}", "result": "pareto front"}),
        importance=layout.importance_table(RUN),
        importance_plot=report(layout.importance_plot(RUN), caption="../report/importance.rst", category="{run}", labels={"run": "{run}", "result": "operation importance"}),
        architecture=report(layout.architecture_plot(RUN), caption="../report/architecture.rst", category="{run}", labels={"run": "{run}", "result": "best architecture picture"}),
    params:
        rdir=run_dir,
        generations=lambda wc: run_of(wc)["generations"],
    log:
        layout.log(RUN, "report"),
    conda:
        SOFTWARE
    shell:
        "snakenas report {params.rdir} --generations {params.generations} > {log} 2>&1"
