"""The Snakemake report of a whole (tiny) run, as a person opens it.

One module fixture runs every rule of the workflow on a tiny configuration (a 1-layer 16-dim
model, 60 synthetic proteins, the activation and random methods, the global scope, an external
synthetic set; ~40 s on 2 cores) and writes ``snakemake --report report.html``, the embedded html
report. Its first screen must be the verdict table (a figure one click away), fit a 1280-px window
with its notes, count the sets judged and those at baseline, and its atlas link must open the
atlas: checked in headless Chromium (skipped with the reason where chromium, chromedriver or
selenium are missing; .ci/run installs them). The embedded default gets the same check at the end of the real
SLURM run (tests/test_slurm.py). With KNEURONS_REPORT_DOCS=1 the first screen also goes to
docs/report-first-screen.png; KNEURONS_REPORT=path/to/report.html screenshots that report (e.g.
the demo's, ``make report``) instead of this test's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from browser import ARTEFACTS, check_report, chromium, chromium_missing
from workflow_rules import REPO, TINY_CONFIG

from kneurons.tables import read_claims

pytestmark = pytest.mark.slow

TINY = {
    **TINY_CONFIG,
    "train": {"epochs": 3, "token_budget": 512, "replicates": 1},
    "score": {"methods": ["activation", "random"], "max_sequences": 16},
    "ablate": {"random_seeds": [0, 1], "scopes": ["global"], "fractions": [0.0, 0.1, 0.5, 1.0]},
    "stats": {"bootstrap": 50},
    # an external set: the verdict table's rows of two sets, and (this model learns little in three
    # epochs) the baseline rule's notes, which the table must fit at 1280 px
    "evaluate": {"external": {"new_synthetic": "synthetic"}, "synthetic": {"n_per_class": 6}},
    "figures": {"formats": ["png"], "dpi": 50},
}


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The tiny run's embedded html report."""
    work = tmp_path_factory.mktemp("report")
    (work / "config.yaml").write_text(yaml.safe_dump(TINY))
    snakemake(work, "--cores", "2")
    snakemake(work, "--report", "results/report.html")
    return work / "results" / "report.html"


def test_report_opens_on_the_verdicts_of_the_run(report):
    """Without a browser: the description the report shows first is the claims job's verdict
    table, one row per claim of claims.tsv, with its figure links and the atlas link."""
    text = report.read_text()
    desc = json.loads(re.search(r"var workflow_desc = (\".*?\");\n", text).group(1))
    claims = read_claims(report.parent / "stats" / "claims.tsv")
    assert desc.index('id="kn-verdicts"') < desc.index("Reproduces and extends")
    table = desc[desc.index("<tbody>") : desc.index("</tbody>")]
    assert table.count("<tr>") == len(claims) > 0
    for verdict in claims["verdict"]:
        assert f">{verdict}</td>" in table
    assert "figures/accuracy_preserve" in table and "open the neuron atlas" in desc
    # the first lines count the sets judged and those at baseline, and each note sits under its claim
    sets = sorted(set(claims["set"]))
    assert f'<p class="sets">{len(sets)} evaluation sets judged (' in desc, desc[:3000]
    notes = [n for n in claims["note"] if n]
    assert notes and table.count('<span class="note">') == len(notes), "no notes to check the layout with"


@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
def test_report_first_screen_is_the_verdict_table_and_the_atlas_opens(report):
    claims = read_claims(report.parent / "stats" / "claims.tsv")
    driver = chromium()
    try:
        check_report(driver, report, len(claims))
    finally:
        driver.quit()


@pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
@pytest.mark.skipif(os.environ.get("KNEURONS_REPORT_DOCS") != "1", reason="only with KNEURONS_REPORT_DOCS=1")
def test_screenshot_for_the_docs(request):
    """The README's report screenshot (docs/report-first-screen.png): the first screen in a 1280-px
    window, the narrowest the table must fit, after every check of ``check_report``."""
    target = Path(os.environ.get("KNEURONS_REPORT") or request.getfixturevalue("report")).resolve()
    claims = read_claims(target.parent / "stats" / "claims.tsv")
    driver = chromium()
    try:
        check_report(driver, target, len(claims), shot="report-first-screen-docs.png")
    finally:
        driver.quit()
    shutil.copyfile(ARTEFACTS / "report-first-screen-1280.png", REPO / "docs" / "report-first-screen.png")
