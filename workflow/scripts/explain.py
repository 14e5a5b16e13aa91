"""Explain the proteins of explain.proteins with the finished run: index.html, explain.tsv, explain.json."""
# ruff: noqa: F821  (`snakemake` is injected by Snakemake's script directive)

from kneurons.jobs import start
from kneurons.jobs.explain import output_dir, run_explain_job, run_files

job = start(snakemake, model=True)
out = output_dir(dict(snakemake.output.items()))
run_explain_job(run_files(snakemake.input), snakemake.input.proteins, job.params, out, job.device)
