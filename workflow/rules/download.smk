# Download: one rule per source (data.source picks one), then `proteins` normalises the
# chosen source into the contract table data/proteins.tsv (accession, ec, sequence, ...).
# Readers and their formats: src/kneurons/data/ (uniprot.py, expasy.py, brenda.py, local.py);
# jobs: src/kneurons/jobs/data.py (run_download_*, run_proteins).

DATA = config["data"]
#: The contract table every source is normalised into, and what reading the source rewrote
#: (outside data/, which holds only the data tables); the labels stage reads both.
PROTEINS = f"{R}/data/proteins.tsv"
SOURCE_REPORT = f"{R}/provenance/source_report.json"
DOWNLOAD = f"{R}/data/download"
SYNTHETIC_MOTIFS = f"{DOWNLOAD}/synthetic_motifs.tsv"


# Optional config paths as rule inputs: a one-element list, or empty when unset (the rule
# that needs it is then never scheduled, since data.source selects another one).
ENZYME_DAT = [DATA["expasy"]["enzyme_dat"]] if DATA["expasy"]["enzyme_dat"] else []
BRENDA_FILE = [DATA["brenda"]["path"]] if DATA["brenda"]["path"] else []
SEQUENCES = [DATA["sequences"]] if DATA["sequences"] else []
# The selected source's file for `proteins`: a download output or the user's own file.
SOURCE_FILE = {
    "synthetic": f"{DOWNLOAD}/synthetic.tsv",
    "uniprot": f"{DOWNLOAD}/uniprot.tsv.gz",
    "expasy": f"{DOWNLOAD}/expasy.tsv",
    "brenda": f"{DOWNLOAD}/brenda.tsv",
    "tsv": DATA["tsv"],
    "fasta": DATA["fasta"],
}[DATA["source"]]


rule download_synthetic:
    output:
        proteins=f"{DOWNLOAD}/synthetic.tsv",
        motifs=SYNTHETIC_MOTIFS,
    log:
        f"{R}/logs/data/download_synthetic.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("download_synthetic", config),
    message:
        "Generating synthetic planted-motif proteins"
    script:
        "../scripts/download_synthetic.py"


rule download_uniprot:
    output:
        data=f"{DOWNLOAD}/uniprot.tsv.gz",
        meta=f"{DOWNLOAD}/uniprot.json",
    log:
        f"{R}/logs/data/download_uniprot.log",
    benchmark:
        f"{R}/benchmarks/data/download_uniprot.tsv"
    conda:
        "../../envs/data.yaml"
    resources:
        runtime=240,
    params:
        **rule_params("download_uniprot", config),
    message:
        "Downloading reviewed enzymes from UniProt"
    script:
        "../scripts/download_uniprot.py"


rule download_expasy:
    input:
        enzyme_dat=ENZYME_DAT,
        sequences=SEQUENCES,
    output:
        data=f"{DOWNLOAD}/expasy.tsv",
        meta=f"{DOWNLOAD}/expasy.json",
    log:
        f"{R}/logs/data/download_expasy.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("download_expasy", config),
    message:
        "Reading EC pairs from ExPASy enzyme.dat with their sequences"
    script:
        "../scripts/download_expasy.py"


rule download_brenda:
    input:
        brenda=BRENDA_FILE,
        sequences=SEQUENCES,
    output:
        data=f"{DOWNLOAD}/brenda.tsv",
        meta=f"{DOWNLOAD}/brenda.json",
    log:
        f"{R}/logs/data/download_brenda.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("download_brenda", config),
    message:
        "Reading EC pairs from the BRENDA file with their sequences"
    script:
        "../scripts/download_brenda.py"


rule proteins:
    input:
        SOURCE_FILE,
    output:
        proteins=PROTEINS,
        report=SOURCE_REPORT,
    log:
        f"{R}/logs/data/proteins.log",
    conda:
        "../../envs/data.yaml"
    params:
        **rule_params("proteins", config),
    message:
        "Normalising the {params.source} source {input} into {output.proteins}"
    script:
        "../scripts/proteins.py"
