"""The explain page in a real browser: headless Chromium opens it from file://.

The protein table and one panel per protein render (the per-residue track with a bar per residue and
a mark per annotated site, the named units with their windows), nothing is fetched, no console
error, and a unit's link opens that unit's panel in the run's atlas. Screenshots go to
tests/artefacts/ (git-ignored); with KNEURONS_EXPLAIN_DOCS=1 a panel's also goes to
docs/explain-page.png, and KNEURONS_EXPLAIN_PAGE=path/to/index.html screenshots that page (e.g.
the demo's results/explain/index.html) instead of the test's.
Skipped where chromium or chromedriver (Debian packages) or selenium are missing; CI installs them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from browser import _wait, chromium, chromium_missing, requests, save
from workflow_rules import REPO

from kneurons.explain.run import find_run
from kneurons.schema import section_defaults

if chromium_missing():
    pytest.skip(chromium_missing(), allow_module_level=True)
from selenium.webdriver.common.by import By  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(explain_run, tmp_path_factory, one_torch_thread) -> Path:
    """Four of the tiny run's test proteins (one per class) explained into a folder of their own."""
    from kneurons.jobs.explain import run_explain_job

    tmp = tmp_path_factory.mktemp("explain_page")
    table = pd.read_csv(explain_run.proteins, sep="\t", dtype=str)
    four = table.assign(cls=table["ec"].str[0]).groupby("cls").head(1).drop(columns=["cls"])
    four.to_csv(tmp / "four.tsv", sep="\t", index=False)
    out = tmp / "out"
    paths = run_explain_job(
        find_run(explain_run.results), tmp / "four.tsv", {"explain": section_defaults("explain")}, out
    )
    return paths["html"]


def _severe(driver) -> list:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_panels_render_offline(browser, page):
    browser.get(page.as_uri())
    data = json.loads(browser.find_element(By.ID, "explain-data").get_attribute("textContent"))
    proteins = data["proteins"]
    assert len(browser.find_elements(By.CSS_SELECTOR, "#proteins tbody tr")) == len(proteins) == 4
    panels = browser.find_elements(By.CSS_SELECTOR, ".protein-panel")
    assert len(panels) == 4
    for panel, p in zip(panels, proteins, strict=True):
        assert panel.find_element(By.TAG_NAME, "h3").text == p["accession"]
        track = panel.find_element(By.CSS_SELECTOR, "svg.track")
        assert track.size["width"] > 300 and track.size["height"] > 100
        assert len(track.find_elements(By.CSS_SELECTOR, "rect.residue")) == p["model_length"]
        assert len(track.find_elements(By.CSS_SELECTOR, "path.site")) == len(p["sites"])
        units = panel.find_elements(By.CSS_SELECTOR, "table.units tr.unit")
        assert len(units) == len(p["replicates"][0]["units"]) > 0
        assert panel.find_elements(By.CSS_SELECTOR, "table.units .window span.res.center")
        assert "Replicate 0: filling its" in panel.text and "Replicate 1: filling its" in panel.text
    # the table's protein links lead to the panels
    browser.find_elements(By.CSS_SELECTOR, "#proteins tbody a")[2].click()
    assert browser.execute_script("return location.hash") == "#protein-2"
    panel = browser.find_element(By.ID, "protein-2")
    browser.execute_script("arguments[0].scrollIntoView()", panel)
    save(browser, "explain-panel.png")
    assert not _severe(browser)
    remote = [u for u in requests(browser) if not u.startswith(("file:", "data:"))]
    assert not remote, remote


def test_a_unit_link_opens_its_panel_in_the_atlas(browser, page):
    browser.get(page.as_uri())
    link = browser.find_element(By.CSS_SELECTOR, "#protein-0 a.atlas-link")
    unit = link.text
    href = link.get_attribute("href")
    assert href.startswith("file:") and href.endswith("atlas/index.html#" + unit)
    link.click()
    panel = _wait(
        lambda: [p for p in browser.find_elements(By.ID, "panel") if p.is_displayed()],
        what="the atlas's panel",
    )[0]
    assert panel.find_element(By.TAG_NAME, "h3").text == unit
    assert browser.find_element(By.CSS_SELECTOR, f'#neurons tr.selected[data-id="{unit}"]')
    save(browser, "explain-atlas-unit.png")
    assert not _severe(browser)


def test_screenshot_for_the_docs(browser, page):
    """docs/explain-page.png, a protein's panel (written only with KNEURONS_EXPLAIN_DOCS=1;
    KNEURONS_EXPLAIN_PAGE: another page, e.g. the demo's)."""
    target = Path(os.environ.get("KNEURONS_EXPLAIN_PAGE") or page).resolve()
    browser.get(target.as_uri() + "#protein-0")
    assert browser.find_elements(By.CSS_SELECTOR, "#protein-0 svg.track")
    shot = save(browser, "explain-page-docs.png")
    if os.environ.get("KNEURONS_EXPLAIN_DOCS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "explain-page.png")
