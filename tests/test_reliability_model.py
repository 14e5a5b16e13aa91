"""Reliability of the model end: bad checkpoints, score tables of another model, safe loading,
out-of-memory batches, and scoring / ablation jobs killed mid-way (SIGTERM and SIGKILL).

A tiny randomly initialised ESM-2 (2 layers x 16 dims) keeps every test fast; none of these
properties depends on the model being trained. Training killed by SIGKILL is tested in
test_train.py; training killed by SIGTERM through Snakemake in test_reliability_workflow.py.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from kneurons.ablation.engine import evaluate_masks
from kneurons.ablation.fill import Fill
from kneurons.ablation.masks import layout_of
from kneurons.config import validate_config
from kneurons.errors import InputError, ModelError
from kneurons.io import sha256_file
from kneurons.jobs.ablate import run_ablation_job
from kneurons.jobs.score import run_score_job
from kneurons.model.batching import is_out_of_memory, run_adaptive
from kneurons.model.checkpoint import CHECKPOINT_FORMAT, load_classifier, save_classifier
from kneurons.model.classifier import BackboneSpec, EsmClassifier, build_backbone
from kneurons.provenance import check_scores_match_checkpoint
from kneurons.scoring.activation import activation_per_sequence
from kneurons.scoring.ig import attribution_per_sequence
from kneurons.settings import job_settings
from kneurons.tables import gather_score_tables, read_score_table, score_table_metadata, write_score_table
from kneurons.training.loop import predict

REPO = Path(__file__).resolve().parents[1]
AA = "ACDEFGHIKLMNPQRSTVWY"
LABELS = ["1", "2", "3"]
SPEC = BackboneSpec("custom", 2, 16, 2)
MODEL_CFG = {
    "name": "custom",
    "pretrained": False,
    "custom": {"num_layers": 2, "embed_dim": 16, "attention_heads": 2},
}
CFG = validate_config(
    {
        "model": MODEL_CFG,
        "score": {
            "methods": ["activation", "ig"],
            "max_sequences": None,
            "token_budget": 600,
            "ig": {"steps": 4},
            "random": {"seeds": [0]},
        },
        "ablate": {"fractions": [0, 0.5, 1], "random_seeds": [0], "token_budget": 300},
        "characterise": {"enabled": False},
    }
)
#: What the score and ablation rules pass their jobs (kneurons.settings), built from CFG.
ACT = job_settings("score_layers", CFG, method="activation")
ABLATE = job_settings("ablate", CFG)


def tiny_model(seed: int) -> EsmClassifier:
    torch.manual_seed(seed)
    return EsmClassifier(build_backbone(SPEC), len(LABELS)).eval()


def sequences(n: int, seed: int = 0, lo: int = 12, hi: int = 40) -> list[str]:
    rng = np.random.default_rng(seed)
    return ["".join(rng.choice(list(AA), int(rng.integers(lo, hi)))) for _ in range(n)]


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> SimpleNamespace:
    """Two checkpoints (a, b), a scoring set, a split with a test part, and a's gathered activation scores."""
    d = tmp_path_factory.mktemp("reliability_model")
    for name, seed in (("a", 0), ("b", 1)):
        save_classifier(d / f"{name}.pt", tiny_model(seed), SPEC, LABELS, {"seed": seed})
    seqs = sequences(40)
    labels = [LABELS[i % 3] for i in range(len(seqs))]
    table = pd.DataFrame(
        {"accession": [f"P{i:03d}" for i in range(len(seqs))], "sequence": seqs, "label": labels}
    )
    scoring = table.iloc[:24].assign(label_index=[LABELS.index(x) for x in labels[:24]])
    scoring.to_csv(d / "scoring_set.tsv", sep="\t", index=False)
    scoring.iloc[:8].to_csv(d / "small_set.tsv", sep="\t", index=False)  # for the (slower) IG jobs
    table.assign(split=["train"] * 24 + ["test"] * 16).to_csv(d / "split.tsv", sep="\t", index=False)
    layers = []
    for layer in (0, 1):
        layers.append(d / f"act{layer}.parquet")
        run_score_job(d / "a.pt", d / "scoring_set.tsv", "activation", [layer], ACT, layers[-1])
    df, meta = gather_score_tables(layers)
    write_score_table(df, d / "activation.parquet", meta)
    return SimpleNamespace(
        dir=d,
        a=d / "a.pt",
        b=d / "b.pt",
        scoring_set=d / "scoring_set.tsv",
        small_set=d / "small_set.tsv",
        split=d / "split.tsv",
        scores=d / "activation.parquet",
    )


def ig_job(work: SimpleNamespace, out: Path) -> dict:
    """Arguments of one IG scoring job (layer 1 of checkpoint a on the small set)."""
    return {
        "checkpoint": str(work.a),
        "scoring_set_path": str(work.small_set),
        "method": "ig",
        "layers": [1],
        "settings": job_settings("score_layers", CFG, method="ig"),
        "out_path": str(out),
    }


def ablation_job(work: SimpleNamespace, table: Path, pred: Path) -> dict:
    """Arguments of one ablation job (activation scores, global scope)."""
    return {
        "checkpoint": str(work.a),
        "split_path": str(work.split),
        "scores_path": str(work.scores),
        "method": "activation",
        "scope": "global",
        "settings": ABLATE,
        "table_out": str(table),
        "pred_out": str(pred),
    }


@pytest.fixture(scope="module")
def uninterrupted(work) -> SimpleNamespace:
    """The IG and ablation jobs run once without interruption (the reference for killed-and-rerun jobs)."""
    ref = work.dir / "uninterrupted"
    run_score_job(**ig_job(work, ref / "ig_layer1.parquet"))
    run_ablation_job(**ablation_job(work, ref / "ablation.tsv", ref / "ablation.pred.npz"))
    return SimpleNamespace(
        ig=ref / "ig_layer1.parquet", table=ref / "ablation.tsv", pred=ref / "ablation.pred.npz"
    )


# -- checkpoints -----------------------------------------------------------------------------------
def test_truncated_checkpoint_names_the_file(work, tmp_path):
    data = work.a.read_bytes()
    for cut in (len(data) // 2, 100):
        bad = tmp_path / "best.pt"
        bad.write_bytes(data[:cut])
        with pytest.raises(
            ModelError, match=rf"{re.escape(str(bad))}: not a readable kneurons classifier checkpoint"
        ):
            load_classifier(bad)
        out = tmp_path / "scores" / "layer0.parquet"
        with pytest.raises(ModelError, match="best.pt"):
            run_score_job(bad, work.scoring_set, "activation", [0], ACT, out)
        assert not out.parent.exists() or list(out.parent.iterdir()) == []


def test_checkpoint_of_another_architecture_names_the_file(work, tmp_path):
    payload = torch.load(work.a, weights_only=True)
    for key, value in (("num_layers", 3), ("embed_dim", 32)):
        other = dict(payload, backbone=dict(payload["backbone"], **{key: value}))
        path = tmp_path / f"other_{key}.pt"
        torch.save(other, path)
        with pytest.raises(
            ModelError, match=rf"other_{key}\.pt: weights do not fit the recorded architecture"
        ):
            load_classifier(path)
    bare = tmp_path / "state_dict.pt"  # e.g. a model saved with torch.save(model.state_dict())
    torch.save(tiny_model(0).state_dict(), bare)
    with pytest.raises(ModelError, match=r"state_dict\.pt: not a kneurons classifier checkpoint"):
        load_classifier(bare)
    esm_like = tmp_path / "esm2.pt"  # a fair-esm checkpoint is not a fine-tuned classifier
    torch.save({"model": tiny_model(0).esm.state_dict(), "format": None}, esm_like)
    with pytest.raises(ModelError, match=r"esm2\.pt: not a kneurons classifier checkpoint"):
        load_classifier(esm_like)


def test_layer_beyond_the_checkpoint_is_refused(work, tmp_path):
    with pytest.raises(ModelError, match="layer 5 does not exist; the model has 2 layers"):
        run_score_job(work.a, work.scoring_set, "activation", [5], ACT, tmp_path / "layer5.parquet")
    assert list(tmp_path.iterdir()) == []


# -- score tables used with another model -------------------------------------------------------------
def test_ablation_refuses_scores_of_another_model(work, tmp_path):
    table, pred = tmp_path / "t.tsv", tmp_path / "t.pred.npz"
    assert score_table_metadata(work.scores)["checkpoint_sha256"] == sha256_file(work.a)
    with pytest.raises(InputError, match=r"activation\.parquet: scores were computed on a different model"):
        run_ablation_job(work.b, work.split, work.scores, "activation", "global", ABLATE, table, pred)
    assert list(tmp_path.iterdir()) == []
    # the same table with its own model runs (the check is not a blanket refusal)
    run_ablation_job(work.a, work.split, work.scores, "activation", "global", ABLATE, table, pred)
    assert table.exists() and pred.exists()


def test_score_table_without_provenance(work, tmp_path, caplog):
    df, _ = read_score_table(work.scores)
    bare = tmp_path / "external.parquet"
    df.to_parquet(bare)
    with pytest.raises(InputError, match=r"external\.parquet: the score table records no checkpoint hash"):
        check_scores_match_checkpoint(bare, work.a)
    with caplog.at_level(logging.WARNING):
        check_scores_match_checkpoint(bare, work.a, require=False)  # characterisation: warn only
    assert "records no checkpoint hash" in caplog.text
    with pytest.raises(InputError, match="different model"):
        check_scores_match_checkpoint(work.scores, work.b, require=False)
    with pytest.raises(InputError, match=r"nope\.parquet: not a readable parquet score table"):
        check_scores_match_checkpoint(tmp_path / "nope.parquet", work.a)


# -- safe loading --------------------------------------------------------------------------------------
class Payload:
    """Unpickling this object runs os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_malicious_pickles_are_refused_without_running_code(tmp_path):
    from kneurons.model.backends.fair_esm.weights import load_esm_checkpoint
    from kneurons.training.state import load_state

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "x": Payload(marker)}, evil)
    with pytest.raises(
        ModelError,
        match=r"(?s)evil\.pt: not a readable kneurons classifier checkpoint .*unsupported GLOBAL posix\.mkdir",  # noqa: E501
    ):
        load_classifier(evil)
    with pytest.raises(
        ModelError, match=r"evil\.pt: cannot be read as an ESM checkpoint with weights_only=True"
    ):
        load_esm_checkpoint(evil)
    assert load_state(evil) is None  # a poisoned training resume state is ignored, not executed
    # config validation reads a checkpoint's architecture with its own allow-list unpickler
    from kneurons.model.backends.fair_esm.checkpoint_shape import CheckpointShapeError, read_checkpoint_shape

    with pytest.raises(CheckpointShapeError, match=r"global posix\.mkdir is not allowed"):
        read_checkpoint_shape(evil)
    assert not marker.exists()
    # the same file *would* run code under plain pickle semantics: the test is not vacuous
    torch.load(evil, weights_only=False)
    assert marker.exists()


def _call_name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    parts.append(func.id if isinstance(func, ast.Name) else "<expr>")  # model.to(dev).eval -> <expr>.to.eval
    return ".".join(reversed(parts))


FORBIDDEN_CALLS = re.compile(
    r"(^|\.)(pickle|dill|cloudpickle|joblib|marshal|shelve)\.(load|loads|Unpickler|open)$|(^|\.)read_pickle$"
    r"|^yaml\.(load|unsafe_load|full_load|load_all)$|^(eval|exec)$|^torch\.hub\.load$"
    # fair-esm's loaders that call torch.load themselves (load_model_and_alphabet_core takes loaded data)
    r"|load_model_and_alphabet(_local|_hub)?$|load_hub_workaround$|^esm\.pretrained\.esm"
)


def test_no_unsafe_deserialisation_in_the_code():
    """Every torch.load passes weights_only=True; no pickle/yaml.load/eval/np.load(allow_pickle=True)
    anywhere in the library or the workflow scripts (fair-esm's own loaders unpickle, so they are
    banned too)."""
    files = sorted((REPO / "src").rglob("*.py")) + sorted((REPO / "workflow" / "scripts").glob("*.py"))
    assert len(files) > 20
    problems, torch_loads = [], 0
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = _call_name(node.func)
            kw = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(REPO)}:{node.lineno} {name}"
            if name.endswith("torch.load") or name == "load_state_dict_from_url":
                torch_loads += 1
                if not (
                    isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
                ):
                    problems.append(where + " without weights_only=True")
            elif FORBIDDEN_CALLS.search(name):
                problems.append(where)
            elif (
                name.endswith(("np.load", "numpy.load"))
                and isinstance(kw.get("allow_pickle"), ast.Constant)
                and kw["allow_pickle"].value is not False
            ):
                problems.append(where + " with allow_pickle")
    assert problems == []
    assert torch_loads >= 3  # the scan sees the real loaders


# -- out of memory: halve the batch, retry, say so -------------------------------------------------------
def test_sigterm_inside_torch_save_exits_as_terminated(tmp_path, monkeypatch):
    """SystemExit (a SIGTERM, ``exit_on_sigterm``) raised while torch.save writes stays SystemExit.

    torch's zip writer then fails its own clean-up with a RuntimeError ("unexpected pos") that
    would hide it; ``save_tensors`` raises the SystemExit again and leaves no temporary.
    """
    import io as stdio

    from kneurons.model import checkpoint

    class StoppedMidWrite(stdio.FileIO):
        writes = 0

        def write(self, b):
            StoppedMidWrite.writes += 1
            if StoppedMidWrite.writes == 3:
                raise SystemExit(143)
            return super().write(b)

    monkeypatch.setattr(checkpoint, "open", lambda path, mode: StoppedMidWrite(path, mode), raising=False)
    with pytest.raises(SystemExit) as stopped:
        checkpoint.save_tensors(tmp_path / "best_state.pt", {"w": torch.randn(64, 64), "b": torch.zeros(4)})
    assert stopped.value.code == 143
    assert list(tmp_path.iterdir()) == []


def test_run_adaptive_halves_retries_and_remembers(caplog):
    calls: list[list[int]] = []

    def fn(idx):
        calls.append(idx)
        if len(idx) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [i * 10 for i in idx]

    lengths = [10] * 12
    with caplog.at_level(logging.WARNING, logger="kneurons.model.batching"):
        got = list(run_adaptive(fn, [list(range(8)), list(range(8, 12))], lengths, what="scoring"))
    assert [i for idx, _ in got for i in idx] == list(range(12))
    assert all(res == [i * 10 for i in idx] for idx, res in got)
    # 8 fails, 4 fails, 2+2 run; every later piece as large as the failed 4 (the other half, the
    # next batch) is split before it runs: two failures in all, not one per batch
    assert [len(c) for c in calls] == [8, 4, 2, 2, 2, 2, 2, 2]
    assert caplog.text.count("halving the batch") == 2
    assert (
        "scoring: out of memory on 8 sequences (96 padded tokens); halving the batch and retrying"
        in caplog.text
    )


def test_out_of_memory_recognised_and_other_errors_untouched():
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
    )
    assert not is_out_of_memory(RuntimeError("shape mismatch"))

    def broken(idx):
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(run_adaptive(broken, [[0, 1, 2]]))

    def never_fits(idx):  # sequence 1 is too long for the device on its own
        if 1 in idx:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return idx

    with pytest.raises(
        ModelError, match=r"ablation: out of memory on a single sequence of 37 residues \(index 1\)"
    ):
        list(run_adaptive(never_fits, [[0, 1]], [5, 37], what="ablation"))


@pytest.fixture
def oom_above_two(monkeypatch):
    """Make a model's embedding step raise CUDA's out-of-memory error on batches of more than 2 sequences."""

    def install(model: EsmClassifier) -> list[int]:
        sizes: list[int] = []
        real = model.embed

        def embed(tokens):
            sizes.append(tokens.shape[0])
            if tokens.shape[0] > 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
            return real(tokens)

        monkeypatch.setattr(model, "embed", embed)
        return sizes

    return install


def test_model_steps_survive_out_of_memory_with_the_same_results(oom_above_two, caplog):
    model = tiny_model(0)
    seqs = sequences(14, seed=3)
    gold = [i % 3 for i in range(len(seqs))]
    layout = layout_of(model)
    rng = np.random.default_rng(0)
    masks = [
        {b: rng.random(n) < 0.5 for b, n in zip(layout.blocks, layout.sizes, strict=False)} for _ in range(3)
    ]
    steps = {
        "activation": lambda: activation_per_sequence(model, seqs, 1, token_budget=400),
        "ig": lambda: attribution_per_sequence(
            model, seqs[:7], gold[:7], 1, alphas=[0.5, 1.0], weights=[0.5, 0.5], token_budget=800
        ),
        "ablation": lambda: evaluate_masks(model, seqs, masks, Fill(), token_budget=400),
        "evaluation": lambda: predict(model, seqs, token_budget=400),
    }
    expected = {name: run() for name, run in steps.items()}
    sizes = oom_above_two(model)
    with caplog.at_level(logging.WARNING, logger="kneurons.model.batching"):
        got = {name: run() for name, run in steps.items()}
    assert max(sizes) > 2 and "halving the batch and retrying" in caplog.text
    for name in ("activation", "ig"):
        for module, values in expected[name].items():
            np.testing.assert_allclose(
                got[name][module], values, rtol=1e-4, atol=1e-6, err_msg=f"{name} {module}"
            )
    np.testing.assert_array_equal(got["ablation"], expected["ablation"])
    np.testing.assert_allclose(got["evaluation"], expected["evaluation"], rtol=1e-4, atol=1e-5)


# -- killed jobs: no output that looks complete; a rerun gives the uninterrupted result ------------------
RUNNER = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import torch
    torch.set_num_threads(1)
    from kneurons.jobs.signals import exit_on_sigterm
    exit_on_sigterm()  # what every workflow script does
    import kneurons.ablation.engine as ab
    import kneurons.progress as sc
    import kneurons.jobs.score as score_job
    import kneurons.jobs.ablate as ablate_job

    job, phase, marker = sys.argv[1], sys.argv[2], sys.argv[3]
    args = json.loads(open(sys.argv[4]).read())

    def pause():  # let the test kill us here
        open(marker, "w").close()
        time.sleep(300)

    def after(obj, name):
        real = getattr(obj, name)
        def wrapper(*a, **kw):
            out = real(*a, **kw)
            pause()
            return out
        setattr(obj, name, wrapper)

    if job == "score":
        if phase == "compute":
            after(sc.Progress, "step")  # after the first batch
        else:
            import pyarrow.parquet as pq
            after(pq, "write_table")  # the table is in the temporary file, not yet renamed
        score_job.run_score_job(**args)
    else:
        if phase == "compute":
            after(ab, "_predict")
        else:
            after(np, "savez_compressed")  # predictions in their temporary file, table not written
        ablate_job.run_ablation_job(**args)
    """
)


def run_killed(job: str, phase: str, sig: int, args: dict, tmp_path: Path) -> int:
    """Start the job in a subprocess, wait until it reaches ``phase``, send ``sig``; return its exit code."""
    marker = tmp_path / "reached"
    (tmp_path / "args.json").write_text(json.dumps(args, default=str))
    proc = subprocess.Popen(
        [sys.executable, "-c", RUNNER, job, phase, str(marker), str(tmp_path / "args.json")],  # noqa: E501
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"{job} job ended before it could be killed: {proc.stderr.read()[-3000:]}")
            assert time.monotonic() < deadline, f"{job} job did not reach {phase} within 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode


KILLS = [(signal.SIGTERM, "compute"), (signal.SIGKILL, "write")]


def _temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.glob("*.tmp"))


@pytest.mark.parametrize("sig,phase", KILLS, ids=["SIGTERM-computing", "SIGKILL-writing"])
def test_killed_scoring_job_reruns_to_the_uninterrupted_table(work, uninterrupted, tmp_path, sig, phase):
    out_dir = tmp_path / "scores" / "ig"
    out = out_dir / "layer1.parquet"
    code = run_killed("score", phase, sig, ig_job(work, out), tmp_path)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert not out.exists()  # nothing a rerun (or Snakemake) could take as complete
    # SIGTERM cleans up; SIGKILL cannot, but its temporary file never has the output's name
    assert len(_temporaries(out_dir)) == (0 if sig == signal.SIGTERM else 1)
    run_score_job(**ig_job(work, out))  # the rerun
    assert _temporaries(out_dir) == []  # a killed writer's leftovers are removed by the next write
    (got, got_meta), (ref, ref_meta) = read_score_table(out), read_score_table(uninterrupted.ig)
    pd.testing.assert_frame_equal(got, ref, check_exact=True)
    drop = ("seconds",)
    assert {k: v for k, v in got_meta.items() if k not in drop} == {
        k: v for k, v in ref_meta.items() if k not in drop
    }


@pytest.mark.parametrize("sig,phase", KILLS[::-1], ids=["SIGKILL-writing", "SIGTERM-computing"])
def test_killed_ablation_job_reruns_to_the_uninterrupted_result(work, uninterrupted, tmp_path, sig, phase):
    out_dir = tmp_path / "ablation"
    table, pred = out_dir / "activation.global.tsv", out_dir / "activation.global.pred.npz"
    code = run_killed("ablate", phase, sig, ablation_job(work, table, pred), tmp_path)
    assert code == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert not table.exists() and not pred.exists()
    assert len(_temporaries(out_dir)) == (0 if sig == signal.SIGTERM else 1)
    run_ablation_job(**ablation_job(work, table, pred))  # the rerun
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([table.name, pred.name])
    assert table.read_bytes() == uninterrupted.table.read_bytes()
    with np.load(pred) as got, np.load(uninterrupted.pred) as ref:
        assert got.files == ref.files and all(np.array_equal(got[k], ref[k]) for k in ref.files)


# -- determinism on CPU -------------------------------------------------------------------------------------
def test_scoring_is_deterministic_on_cpu(work, uninterrupted, tmp_path):
    """Same checkpoint, subset and settings: the same scores to the last bit (IG and activation)."""
    pairs = [(uninterrupted.ig, tmp_path / "ig.parquet", ig_job(work, tmp_path / "ig.parquet"))]
    act = {
        "checkpoint": work.a,
        "scoring_set_path": work.scoring_set,
        "method": "activation",
        "layers": [1],
        "settings": ACT,
    }
    pairs.append(
        (work.dir / "act1.parquet", tmp_path / "act.parquet", {**act, "out_path": tmp_path / "act.parquet"})
    )
    for first, second, job in pairs:
        run_score_job(**job)
        (t1, m1), (t2, m2) = read_score_table(first), read_score_table(second)
        pd.testing.assert_frame_equal(t1, t2, check_exact=True)
        for m in (m1, m2):
            m.pop("seconds")
        assert m1 == m2
        # with the same provenance the files are byte-identical
        for p, t in ((tmp_path / "1.parquet", t1), (tmp_path / "2.parquet", t2)):
            write_score_table(t, p, m1)
        assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()
