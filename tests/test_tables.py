"""The tables seam: every inter-stage file round-trips through its writer and reader, and each
reader refuses a malformed file with a message that names it."""

from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kneurons.errors import InputError
from kneurons.tables import (
    METADATA_KEY,
    SCORE_COLUMNS,
    gather_score_tables,
    load_ablation,
    read_ablation_table,
    read_characterise_table,
    read_class_labels,
    read_classes,
    read_label_report,
    read_labels,
    read_metrics,
    read_predictions,
    read_proteins_table,
    read_score_table,
    read_scoring_set,
    read_sites_info,
    read_split,
    read_split_rows,
    read_stats_table,
    read_training_curve,
    save_result,
    score_table_metadata,
    write_classes,
    write_json_result,
    write_label_report,
    write_labels,
    write_proteins,
    write_result_table,
    write_score_table,
    write_scoring_set,
    write_split,
    write_stats_tables,
    write_training_curve,
)


def test_tables_import_without_torch():
    code = "import sys, kneurons.tables; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- data stage ----------------------------------------------------------------------------------------
def proteins() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "accession": ["P1", "P2", "P3"],
            "ec": ["1.1.1.1", "", "3.4.21.4"],
            "sequence": ["MKV", "ACD", "WYL"],
        }
    )


def labels() -> pd.DataFrame:
    df = proteins()
    return pd.DataFrame(
        {"accession": df.accession, "sequence": df.sequence, "ec": df.ec, "label": ["1", "3.4", "3.4"]}
    )


def split() -> pd.DataFrame:
    return labels().assign(split=["train", "test", "test"])


def test_proteins_round_trip(tmp_path):
    write_proteins(proteins(), tmp_path / "proteins.tsv")
    pd.testing.assert_frame_equal(read_proteins_table(tmp_path / "proteins.tsv"), proteins())


def test_labels_and_split_round_trip_keep_text(tmp_path):
    write_labels(labels(), tmp_path / "labels.tsv")
    pd.testing.assert_frame_equal(read_labels(tmp_path / "labels.tsv"), labels(), check_dtype=False)
    assert read_labels(tmp_path / "labels.tsv")["ec"].tolist() == ["1.1.1.1", "", "3.4.21.4"]  # not NaN
    write_split(split(), tmp_path / "split.tsv")
    back = read_split(tmp_path / "split.tsv")
    pd.testing.assert_frame_equal(back, split(), check_dtype=False)
    rows = read_split_rows(tmp_path / "split.tsv", "test", ["1", "3.4"], "a test")
    assert rows.index.tolist() == [1, 2] and rows["label"].tolist() == ["3.4", "3.4"]


def test_split_rows_refusals_name_file_and_line(tmp_path):
    write_split(split(), tmp_path / "split.tsv")
    with pytest.raises(InputError, match=r"split\.tsv: line 3: label '3\.4' is not one of"):
        read_split_rows(tmp_path / "split.tsv", "test", ["1"], "a test")
    with pytest.raises(InputError, match=r"split\.tsv: no rows with split == 'val' \(a test\)"):
        read_split_rows(tmp_path / "split.tsv", "val", ["1", "3.4"], "a test")
    split().drop(columns="split").to_csv(tmp_path / "nosplit.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"nosplit\.tsv: split table lacks column\(s\) \['split'\]"):
        read_split(tmp_path / "nosplit.tsv")


def test_labels_refuse_missing_column_and_missing_file(tmp_path):
    labels().drop(columns="label").to_csv(tmp_path / "labels.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"labels\.tsv: labels table lacks column\(s\) \['label'\]"):
        read_labels(tmp_path / "labels.tsv")
    with pytest.raises(InputError, match=r"absent\.tsv: file not found"):
        read_labels(tmp_path / "absent.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(InputError, match=r"empty\.tsv: empty file"):
        read_labels(tmp_path / "empty.tsv")


def test_classes_round_trip_and_label_order(tmp_path):
    classes = pd.DataFrame(
        {"label_index": [0, 1], "label": ["1", "3.4"], "name": ["Oxido", "Hydro"], "n": [1, 2]}
    )
    write_classes(classes.iloc[::-1], tmp_path / "classes.tsv")
    pd.testing.assert_frame_equal(
        read_classes(tmp_path / "classes.tsv"), classes.iloc[::-1].reset_index(drop=True)
    )
    assert read_class_labels(tmp_path / "classes.tsv") == ["1", "3.4"]
    classes.assign(label_index=["0", "x"]).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"bad\.tsv: line 3: column 'label_index': 'x' is not a number"):
        read_classes(tmp_path / "bad.tsv")
    classes.drop(columns="label_index").to_csv(tmp_path / "nolabel.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"nolabel\.tsv: class table lacks column\(s\) \['label_index'\]"):
        read_classes(tmp_path / "nolabel.tsv")


def test_label_report_round_trip(tmp_path):
    report = {"output": {"class_counts": {"1": 1}}, "dropped": {"multi_ec": 0}}
    write_label_report(tmp_path / "r.json", report)
    assert read_label_report(tmp_path / "r.json") == report
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"bad\.json: label report must be a JSON object"):
        read_label_report(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match=r"broken\.json: not valid JSON"):
        read_label_report(tmp_path / "broken.json")


def test_scoring_set_round_trip_and_refusals(tmp_path):
    subset = pd.DataFrame(
        {"accession": ["A", "B"], "sequence": ["MKV", "ACD"], "label": ["1", "3.4"], "label_index": [0, 1]}
    )
    write_scoring_set(subset, tmp_path / "s.tsv")
    pd.testing.assert_frame_equal(read_scoring_set(tmp_path / "s.tsv"), subset, check_dtype=False)
    subset.drop(columns="label").to_csv(tmp_path / "nolabel.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"nolabel\.tsv: scoring set lacks column\(s\) \['label'\]"):
        read_scoring_set(tmp_path / "nolabel.tsv")
    subset.assign(label_index=["0", "one"]).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"bad\.tsv: line 3: label_index 'one' is not an integer"):
        read_scoring_set(tmp_path / "bad.tsv")


# -- score tables --------------------------------------------------------------------------------------
def scores(layer: int = 0) -> pd.DataFrame:
    n = 4
    return pd.DataFrame(
        {
            "method": "ig",
            "layer": layer,
            "module": ["q_proj", "q_proj", "k_proj", "k_proj"],
            "neuron": [0, 1, 0, 1],
            "label": pd.array([None, None, "1", "1"], dtype="string"),
            "seed": pd.array([None] * n, dtype="Int64"),
            "score": np.linspace(0.1, 0.4, n),
        }
    )


def test_score_table_round_trip_with_one_metadata_key(tmp_path):
    meta = {"method": "ig", "checkpoint_sha256": "ab" * 32, "layer": 0}
    write_score_table(scores(), tmp_path / "s.parquet", meta)
    df, back = read_score_table(tmp_path / "s.parquet")
    pd.testing.assert_frame_equal(df, scores())
    assert back == meta == score_table_metadata(tmp_path / "s.parquet")
    # The same bytes pandas reads: the reader only checks, it does not reinterpret.
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), df)
    import pyarrow.parquet as pq

    assert json.loads(pq.read_schema(tmp_path / "s.parquet").metadata[METADATA_KEY]) == meta


def test_gather_round_trip(tmp_path):
    paths = []
    for layer in (1, 0):
        paths.append(tmp_path / f"layer{layer}.parquet")
        write_score_table(scores(layer), paths[-1], {"method": "ig", "layer": layer})
    df, meta = gather_score_tables(paths)
    assert meta["layers"] == [0, 1] and list(df.columns) == SCORE_COLUMNS and len(df) == 8
    write_score_table(df, tmp_path / "ig.parquet", meta)
    back, back_meta = read_score_table(tmp_path / "ig.parquet")
    pd.testing.assert_frame_equal(back, df)
    assert back_meta == meta


def test_gather_of_layer_chunks_is_the_gather_of_single_layers(tmp_path):
    """Parts of several layers (score.layers_per_job) gather to the table, and provenance, that
    one part per layer gives; a part from before chunks (``layer``) still counts; overlaps fail."""
    meta = {"method": "ig", "checkpoint_sha256": "ab" * 32, "settings": {"steps": 4}}
    singles, chunks = [], []
    for layer in (2, 0, 1):  # out of order: the gather orders the rows
        singles.append(tmp_path / f"single{layer}.parquet")
        write_score_table(scores(layer), singles[-1], {**meta, "layers": [layer], "seconds": layer})
    for name, layers in (("a", [2]), ("b", [0, 1])):
        chunks.append(tmp_path / f"{name}.parquet")
        df = pd.concat([scores(layer) for layer in layers], ignore_index=True)
        write_score_table(df, chunks[-1], {**meta, "layers": layers, "seconds": 9})
    want, want_meta = gather_score_tables(singles)
    got, got_meta = gather_score_tables(chunks)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got_meta == want_meta == {**meta, "weights_sha256": None, "subset": None, "layers": [0, 1, 2]}
    write_score_table(scores(2), tmp_path / "old.parquet", {**meta, "layer": 2})  # one-layer-per-job code
    old, old_meta = gather_score_tables([tmp_path / "old.parquet", chunks[1]])
    pd.testing.assert_frame_equal(old, want, check_exact=True)
    assert old_meta == want_meta
    with pytest.raises(InputError, match=r"layer tables overlap: layers \[0, 1, 1\]"):
        gather_score_tables([chunks[1], singles[2]])
    with pytest.raises(InputError, match=r"layer tables overlap: layers \[0, 1, 2, 2\]"):
        gather_score_tables([*chunks, tmp_path / "old.parquet"])


def test_score_table_refusals_name_the_file(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pandas(scores().drop(columns="seed")), tmp_path / "noseed.parquet")
    with pytest.raises(InputError, match=r"noseed\.parquet: score table lacks column\(s\) \['seed'\]"):
        read_score_table(tmp_path / "noseed.parquet")
    pq.write_table(pa.Table.from_pandas(scores().assign(score="high")), tmp_path / "text.parquet")
    with pytest.raises(
        InputError, match=r"text\.parquet: score table column\(s\) \['score'\] must be numeric"
    ):
        read_score_table(tmp_path / "text.parquet")
    (tmp_path / "nope.parquet").write_text("not parquet")
    with pytest.raises(InputError, match=r"nope\.parquet: not a readable parquet score table"):
        read_score_table(tmp_path / "nope.parquet")
    with pytest.raises(InputError, match=r"nope\.parquet: not a readable parquet score table"):
        score_table_metadata(tmp_path / "nope.parquet")


# -- ablation tables and predictions -------------------------------------------------------------------
def ablation_result(n_test: int = 5) -> SimpleNamespace:
    table = pd.DataFrame(
        {
            "method": "ig",
            "scope": "module_type",
            "scope_name": "k_proj",
            "layer": pd.array([None, None], dtype="Int64"),
            "module": "k_proj",
            "mode": "preserve",
            "f": [0.0, 0.5],
            "seed": pd.array([None, None], dtype="Int64"),
            "fill": "zero",
            "accuracy": [0.2, 0.8],
        }
    )
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, n_test)
    return SimpleNamespace(
        table=table,
        preds=rng.integers(0, 3, (2, n_test)),
        full_pred=y.copy(),
        y_true=y,
        accessions=np.array([f"P{i}" for i in range(n_test)]),
    )


def test_ablation_round_trip(tmp_path):
    result = ablation_result()
    save_result(tmp_path / "t.tsv", tmp_path / "t.pred.npz", result)
    pd.testing.assert_frame_equal(read_ablation_table(tmp_path / "t.tsv"), result.table)
    keys, pred, full, y, acc = read_predictions(tmp_path / "t.pred.npz")
    np.testing.assert_array_equal(pred, result.preds)
    np.testing.assert_array_equal(acc, result.accessions)
    data = load_ablation([tmp_path / "t.tsv"], [tmp_path / "t.pred.npz"])
    np.testing.assert_array_equal(data.correct, result.preds == result.y_true[None, :])
    assert data.full_accuracy == 1.0


def test_ablation_refusals_name_the_file(tmp_path):
    result = ablation_result()
    result.table.drop(columns="mode").to_csv(tmp_path / "nomode.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"nomode\.tsv: ablation table lacks column\(s\) \['mode'\]"):
        read_ablation_table(tmp_path / "nomode.tsv")
    result.table.assign(f=["0", "half"]).to_csv(tmp_path / "badf.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"badf\.tsv: line 3: column 'f': 'half' is not a number"):
        read_ablation_table(tmp_path / "badf.tsv")
    np.savez(tmp_path / "short.npz", keys=np.array(["a"]))
    with pytest.raises(InputError, match=r"short\.npz: prediction file lacks array\(s\) \['pred'"):
        read_predictions(tmp_path / "short.npz")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(InputError, match=r"plain\.npy: not a prediction archive"):
        read_predictions(tmp_path / "plain.npy")


# -- statistics, characterisation, training ------------------------------------------------------------
def test_stats_tables_round_trip(tmp_path):
    frames = {
        "curves": ablation_result().table.assign(full_accuracy=0.9),
        "density": pd.DataFrame(
            {
                "method": "ig",
                "seed": pd.array([None], dtype="Int64"),
                "level": "overall",
                "layer": pd.array([None], dtype="Int64"),
                "module": "k_proj",
                "count": [3],
                "enrichment": [1.5],
                "p_enriched": [0.01],
                "q_enriched": [0.02],
            }
        ),
    }
    out = {name: tmp_path / f"{name}.tsv" for name in frames}
    write_stats_tables(frames, out)
    for name, df in frames.items():
        pd.testing.assert_frame_equal(read_stats_table(out[name], name), df)
    frames["density"].drop(columns="enrichment").to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    with pytest.raises(
        InputError, match=r"d\.tsv: statistics table 'density' lacks column\(s\) \['enrichment'\]"
    ):
        read_stats_table(tmp_path / "d.tsv", "density")
    frames["curves"].assign(accuracy=["x", "0.1"]).to_csv(tmp_path / "c.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"c\.tsv: line 2: column 'accuracy': 'x' is not a number"):
        read_stats_table(tmp_path / "c.tsv", "curves")


def test_characterise_tables_round_trip(tmp_path):
    overlap = pd.DataFrame({"class_a": ["1", "1"], "class_b": ["1", "2"], "jaccard": [1.0, 0.25]})
    write_result_table(overlap, tmp_path / "class_overlap.tsv")
    pd.testing.assert_frame_equal(
        read_characterise_table(tmp_path / "class_overlap.tsv", "class_overlap"), overlap
    )
    sets = pd.DataFrame({"label": ["1"], "rank": [1], "layer": [0], "module": ["k_proj"], "neuron": [3]})
    write_result_table(sets, tmp_path / "class_neurons.tsv")
    pd.testing.assert_frame_equal(
        read_characterise_table(tmp_path / "class_neurons.tsv", "class_neurons"), sets
    )
    sets.drop(columns="neuron").to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"bad\.tsv: characterisation table 'class_neurons' lacks column"):
        read_characterise_table(tmp_path / "bad.tsv", "class_neurons")
    write_json_result(tmp_path / "sites.json", {"annotation": "active_site"})
    assert read_sites_info(tmp_path / "sites.json") == {"annotation": "active_site"}


def test_training_outputs_round_trip(tmp_path):
    curve = pd.DataFrame(
        {"epoch": [1, 2], "step": [10, 20], "train_loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}
    )
    write_training_curve(curve, tmp_path / "training_curve.tsv")
    pd.testing.assert_frame_equal(read_training_curve(tmp_path / "training_curve.tsv"), curve)
    metrics = {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.4}}
    write_json_result(tmp_path / "metrics.json", metrics)
    assert read_metrics(tmp_path / "metrics.json") == metrics
    curve.drop(columns="epoch").to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=r"bad\.tsv: training curve lacks column\(s\) \['epoch'\]"):
        read_training_curve(tmp_path / "bad.tsv")


def test_writers_keep_the_bytes_of_write_table_atomic(tmp_path):
    from kneurons.io import write_table_atomic

    write_table_atomic(split(), tmp_path / "a.tsv")
    write_split(split(), tmp_path / "b.tsv")
    assert (tmp_path / "a.tsv").read_bytes() == (tmp_path / "b.tsv").read_bytes()
