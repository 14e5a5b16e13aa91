"""The tables seam: one reader and one writer per file that passes between stages.

Torch-free, so data, statistics and figure jobs can use it. Each reader checks what its file
must hold (columns, dtypes, provenance) and raises ``InputError`` naming the file (and the
line where it can). Each writer writes the bytes the stage has always written.

file                                    writer / reader
-------------------------------------   -------------------------------------------------------------
data/proteins.tsv, data/download/*.tsv  write_proteins / read_proteins_table
provenance/source_report.json                 write_source_report / read_source_report
data/dropped.tsv, external/<name>/dropped.tsv
                                        write_dropped / read_dropped
data/labels.tsv                         write_labels / read_labels
data/classes.tsv                        write_classes / read_classes, read_class_labels
data/label_report.json                  write_label_report / read_label_report
data/split.tsv                          write_split / read_split, read_split_rows
data/leakage_report.json                write_leakage_report / (a report for people)
scores/scoring_set.tsv                  write_scoring_set / read_scoring_set
scores/{method}.parquet, scores/{method}/layers{first}-{last}.parquet
                                        write_score_table, gather_score_tables /
                                        read_score_table, score_table_metadata (footer only)
ablation/{method}/{scope}.tsv, .npz     save_result (save_predictions), gather_results (the random
                                        baseline's seed-chunk parts, ablation/random/seeds/) /
                                        read_ablation_table, read_predictions, load_ablation (the
                                        SAE features' and the same-site bases' tables alike:
                                        features/ablation/*, features/bases/layer{l}.*)
stats/{name}.tsv                        write_stats_tables / read_stats_table (faithfulness and
                                        compactness included, the SAE features' and the same-site
                                        bases' curve tables: stats/bases_*.tsv)
characterise/*.tsv, *.json              write_result_table, write_json_result /
                                        read_characterise_table, read_sites_info, read_intact_metrics
                                        (class_summary.json's intact block: claim 5's baseline)
features/saes.json                      write_json_result / read_sae_report
stats/claims.tsv                        write_claims / read_claims (numbers rounded for people)
stats/verdicts.html                     write_verdicts / (the report's first screen, for people)
external/<name>/proteins.tsv            write_external_proteins / read_external_proteins
external/<name>/report.json            write_json_result (a report for people)
external/<name>/metrics.json            write_json_result / read_intact_metrics
external/<name>/random_gap.tsv, curves, faithfulness
                                        write_stats_tables / read_stats_table
model/training_curve.tsv, metrics.json  write_training_curve, write_json_result /
                                        read_training_curve, read_metrics, read_intact_metrics
concepts/{name}.tsv, info.json          write_concept_tables, write_concepts_info /
                                        read_concept_table, read_concepts_info
"""

from kneurons.tables.ablation import (
    AblationData,
    AblationResult,
    gather_results,
    load_ablation,
    read_ablation_table,
    read_predictions,
    row_keys,
    save_predictions,
    save_result,
)
from kneurons.tables.base import read_json, read_tsv, read_tsv_table
from kneurons.tables.claims import read_claims, write_claims, write_verdicts
from kneurons.tables.concepts import (
    read_concept_table,
    read_concepts_info,
    write_concept_tables,
    write_concepts_info,
)
from kneurons.tables.data import (
    read_class_labels,
    read_classes,
    read_dropped,
    read_external_proteins,
    read_label_report,
    read_labels,
    read_proteins_table,
    read_scoring_set,
    read_source_report,
    read_split,
    read_split_rows,
    write_classes,
    write_dropped,
    write_external_proteins,
    write_label_report,
    write_labels,
    write_leakage_report,
    write_proteins,
    write_scoring_set,
    write_source_report,
    write_split,
)
from kneurons.tables.results import (
    read_characterise_table,
    read_intact_metrics,
    read_metrics,
    read_sae_report,
    read_sites_info,
    read_stats_table,
    read_training_curve,
    write_json_result,
    write_result_table,
    write_stats_tables,
    write_training_curve,
)
from kneurons.tables.scores import (
    COMPLETENESS_KEY,
    METADATA_KEY,
    SCORE_COLUMNS,
    WEIGHTS_KEY,
    gather_score_tables,
    read_score_table,
    score_table_metadata,
    write_score_table,
)

__all__ = [
    "AblationResult",
    "row_keys",
    "METADATA_KEY",
    "SCORE_COLUMNS",
    "COMPLETENESS_KEY",
    "WEIGHTS_KEY",
    "AblationData",
    "gather_results",
    "gather_score_tables",
    "load_ablation",
    "read_ablation_table",
    "read_characterise_table",
    "read_claims",
    "read_concept_table",
    "read_concepts_info",
    "write_concept_tables",
    "write_concepts_info",
    "read_external_proteins",
    "read_intact_metrics",
    "write_external_proteins",
    "write_claims",
    "write_verdicts",
    "read_class_labels",
    "read_classes",
    "read_dropped",
    "read_json",
    "read_label_report",
    "read_labels",
    "read_metrics",
    "read_predictions",
    "read_proteins_table",
    "read_sae_report",
    "read_score_table",
    "read_scoring_set",
    "read_source_report",
    "read_sites_info",
    "read_split",
    "read_split_rows",
    "read_stats_table",
    "read_training_curve",
    "read_tsv",
    "read_tsv_table",
    "save_predictions",
    "save_result",
    "score_table_metadata",
    "write_classes",
    "write_dropped",
    "write_json_result",
    "write_label_report",
    "write_labels",
    "write_leakage_report",
    "write_proteins",
    "write_result_table",
    "write_score_table",
    "write_scoring_set",
    "write_source_report",
    "write_split",
    "write_stats_tables",
    "write_training_curve",
]
