# The final model of each run with a `final:` section (nas/final.py): after the
# report, its top candidates trained again (epochs, repeats of `final:`), the
# winner chosen by its mean, then trained for export.
#
#   snakemake results/RUN/final/model.yaml    one run's final model
#
# `final:` is not part of run.yaml: a changed one re-runs these rules only.

localrules:
    final_settings,
    final_propose,
    final_table,


rule final_settings:
    wildcard_constraints:
        run=runs_matching(FINAL_RUNS),
    output:
        layout.final_config(RUN),
    params:
        # The section with its defaults filled (nas.config): a changed one re-runs the final rules.
        settings=lambda wc: final_of(wc),
    log:
        layout.log(RUN, "final_settings"),
    run:
        write_yaml(output[0], params.settings)


rule final_propose:
    input:
        settings=layout.run_config(RUN),
        final=layout.final_config(RUN),
        history=layout.history(RUN),
    output:
        directory(layout.final_candidates_dir(RUN)),
    log:
        layout.log(RUN, "final_propose"),
    params:
        rdir=run_dir,
    conda:
        SOFTWARE
    shell:
        "snakenas final propose {params.rdir} 2> {log}"


rule final_train:
    wildcard_constraints:
        k=r"k\d\d+",
    input:
        candidates=layout.final_candidates_dir(RUN),
    output:
        metrics=layout.metrics_in(layout.final_eval_dir(RUN, "{k}")),
        epochs=layout.epochs_in(layout.final_eval_dir(RUN, "{k}")),
    log:
        layout.log(RUN, "final_train", c="{k}"),
    benchmark:
        layout.benchmark(RUN, "final_train", c="{k}")
    group:
        "final_{run}"
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
        "snakenas train {input.candidates}/{wildcards.k}.yaml --out $(dirname {output.metrics})"
        " {params.checkpoint} {params.shared} 2> {log}"


rule final_table:
    input:
        settings=layout.run_config(RUN),
        final=layout.final_config(RUN),
        candidates=layout.final_candidates_dir(RUN),
        metrics=final_metrics,
    output:
        report(layout.final_table(RUN), caption="../report/final_table.rst", category="{run}", labels={"run": "{run}", "result": "final re-training table"}),
    log:
        layout.log(RUN, "final_table"),
    params:
        rdir=run_dir,
    conda:
        SOFTWARE
    shell:
        "snakenas final table {params.rdir} 2> {log}"


# With and without model.onnx (final.onnx), one rule each: a rule's outputs are a fixed list.
for onnx in (True, False):

    rule:
        name:
            "final_model" if onnx else "final_model_without_onnx"
        wildcard_constraints:
            run=runs_matching(n for n, r in FINAL_RUNS.items() if r["onnx"] == onnx),
        input:
            settings=layout.run_config(RUN),
            final=layout.final_config(RUN),
            table=layout.final_table(RUN),
            candidates=layout.final_candidates_dir(RUN),
            # The run's operation importance, shown on the card.
            importance=layout.importance_table(RUN),
        output:
            state=layout.model_state(FINAL),
            program=layout.model_program(FINAL),
            card=layout.model_card(FINAL),
            architecture=report(layout.architecture_plot(FINAL), caption="../report/final_architecture.rst", category="{run}", labels={"run": "{run}", "result": "final model architecture"}),
            page=report(layout.card_html(FINAL), caption="../report/final_card.rst", category="{run}", labels={"run": "{run}", "result": "final model card"}),
            **({"onnx": layout.model_onnx(FINAL)} if onnx else {}),
        log:
            layout.log(RUN, "final_model"),
        benchmark:
            layout.benchmark(RUN, "final_model")
        threads: lambda wc: run_of(wc)["training"].get("threads", 1)
        resources:
            **TRAIN_RESOURCES,
        params:
            rdir=run_dir,
        conda:
            SOFTWARE
        shell:
            "snakenas final model {params.rdir} 2> {log}"
