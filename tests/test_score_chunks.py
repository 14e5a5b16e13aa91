"""Scoring jobs of several layers (``score.layers_per_job``): the layer chunks, one job's part table,
and the gathered table, which must be the one that one job per layer gives."""

from __future__ import annotations

from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import yaml
from workflow_rules import REPO

from kneurons.config import validate_config
from kneurons.errors import ConfigError, InputError, ModelError
from kneurons.jobs.score import run_score_job
from kneurons.model.checkpoint import save_classifier
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.scatter import score_layer_chunks
from kneurons.settings import job_settings
from kneurons.tables import gather_score_tables, read_score_table, write_score_table

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BASE = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
SEQS = ["MKTAYIAKQRQISFVKSHFSRQ", "MKVLAAGIVG", "MSTNPKPQRKTKRNTNRRPQDVKFPGG", "GAVLIPFWMS", "WWPLKQ"]
METHODS = ("activation", "ig", "gradxact", "random")


def config(model: dict | None = None, **score) -> dict:
    """The embedded default with ``score`` keys (and the ``model`` section) replaced."""
    return validate_config({**BASE, "model": model or BASE["model"], "score": {**BASE["score"], **score}})


# -- the chunks --------------------------------------------------------------------------------------
def test_auto_puts_a_custom_model_in_one_job_and_a_named_model_one_layer_per_job():
    assert config()["score"]["layers_per_job"] == "auto"  # the default
    assert score_layer_chunks(config()) == [(0, 3)]  # the embedded default: 4 layers, custom
    five = {**BASE["model"], "custom": {**BASE["model"]["custom"], "num_layers": 5}}
    assert score_layer_chunks(config(five)) == [(0, 4)]
    named = {"name": "esm2_t6_8M_UR50D"}
    assert score_layer_chunks(config(named)) == [(layer, layer) for layer in range(6)]
    assert score_layer_chunks(config(named, layers_per_job=4)) == [(0, 3), (4, 5)]


@pytest.mark.parametrize(
    "per,chunks",
    [
        (1, [(0, 0), (1, 1), (2, 2), (3, 3)]),
        (2, [(0, 1), (2, 3)]),
        (3, [(0, 2), (3, 3)]),
        (4, [(0, 3)]),
        (10, [(0, 3)]),
    ],
)
def test_an_integer_chunks_consecutive_layers_the_last_chunk_shorter(per, chunks):
    assert score_layer_chunks(config(layers_per_job=per)) == chunks


@pytest.mark.parametrize("per", [0, -1, "all", "Auto", True, 1.5, None, [2]])
def test_other_values_are_refused_naming_the_key(per):
    with pytest.raises(ConfigError, match="score.layers_per_job"):
        config(layers_per_job=per)


def test_the_plan_counts_one_score_job_per_chunk_and_replicate(tmp_path):
    from kneurons.plan import plan_costs

    passes = set()
    for per, jobs in (("auto", 1), (3, 2), (1, 4)):
        cfg = config(layers_per_job=per)
        cfg = {**cfg, "results": str(tmp_path), "train": {**cfg["train"], "replicates": 2}}
        stages = {c.stage: c for c in plan_costs(cfg)[0]}
        assert [stages[f"score {m}"].jobs for m in METHODS] == [2 * jobs] * 4, per
        passes.add(tuple((stages[f"score {m}"].forward, stages[f"score {m}"].backward) for m in METHODS))
    assert len(passes) == 1  # the same layers are scored the same way, however they are grouped


# -- one job, several layers ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def job(tmp_path_factory) -> SimpleNamespace:
    """A 3-layer, 2-class checkpoint, a 5-sequence scoring set, and each method's job settings."""
    d = tmp_path_factory.mktemp("score_chunks")
    torch.manual_seed(0)
    spec = BackboneSpec("custom", 3, 32, 4)
    model = EsmClassifier(build_backbone(spec), num_classes=2).eval()
    save_classifier(d / "best.pt", model, spec, ["x", "y"], {})
    subset = pd.DataFrame(
        {
            "accession": [f"A{i}" for i in range(5)],
            "sequence": SEQS,
            "label": list("xyxyx"),
            "label_index": [0, 1, 0, 1, 0],
        }
    )
    subset.to_csv(d / "scoring_set.tsv", sep="\t", index=False)
    cfg = config(max_sequences=None, ig={"steps": 3})
    settings = {m: job_settings("score_layers", cfg, method=m) for m in METHODS}
    return SimpleNamespace(dir=d, ckpt=d / "best.pt", scoring_set=d / "scoring_set.tsv", settings=settings)


def score(job: SimpleNamespace, method: str, layers: list[int]) -> str:
    """Run the scoring job of ``layers``; the path of its part table."""
    out = job.dir / method / f"layers{layers[0]}-{layers[-1]}.parquet"
    run_score_job(job.ckpt, job.scoring_set, method, layers, job.settings[method], out)
    return out


@pytest.mark.parametrize("method", METHODS)
def test_a_job_of_two_layers_writes_the_rows_of_both_and_gathers_as_one_job_per_layer(job, method):
    pair = score(job, method, [0, 1])
    singles = [score(job, method, [layer]) for layer in range(3)]
    df, meta = read_score_table(pair)
    assert meta["layers"] == [0, 1] and "layer" not in meta and meta["seconds"] >= 0
    assert df["layer"].drop_duplicates().tolist() == [0, 1]  # in chunk order
    # each layer is scored on its own: the same rows, bit for bit, as its one-layer job
    one_by_one = pd.concat([read_score_table(p)[0] for p in singles[:2]], ignore_index=True)
    pd.testing.assert_frame_equal(df, one_by_one, check_exact=True)
    assert [read_score_table(p)[1]["layers"] for p in singles] == [[0], [1], [2]]
    # the gathered table, and its file, are those of one job per layer
    (got, got_meta), (want, want_meta) = gather_score_tables([pair, singles[2]]), gather_score_tables(singles)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got_meta == want_meta and got_meta["layers"] == [0, 1, 2]
    files = [job.dir / f"{method}.{name}.parquet" for name in ("chunks", "singles")]
    write_score_table(got, files[0], got_meta)
    write_score_table(want, files[1], want_meta)
    assert files[0].read_bytes() == files[1].read_bytes()
    with pytest.raises(InputError, match=r"layer tables overlap: layers \[0, 1, 1, 2\]"):
        gather_score_tables([pair, *singles[1:]])


def test_a_chunk_with_a_layer_beyond_the_model_is_refused_before_any_scoring(job, tmp_path):
    out = tmp_path / "layers2-3.parquet"
    with pytest.raises(ModelError, match="layer 3 does not exist; the model has 3 layers"):
        run_score_job(job.ckpt, job.scoring_set, "ig", [2, 3], job.settings["ig"], out)
    assert list(tmp_path.iterdir()) == []
