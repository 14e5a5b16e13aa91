"""The atlas in a real browser: headless Chromium opens the page from file://.

No console errors, no network requests, the neuron table's row count, sorting, filtering, and a
neuron's panel with its logo; on a page with SAE features, the units filter and a feature's panel;
on a page with the concept stage, the concept filter and a unit's concepts.
Screenshots of the overview and of one neuron and one feature panel are saved in
tests/artefacts/ (git-ignored); with KNEURONS_ATLAS_DOCS=1 the overview also goes to
docs/atlas-overview.png and a feature's panel to docs/atlas-feature.png, and
KNEURONS_ATLAS_PAGE=path/to/index.html screenshots that page (e.g. the demo's
results/atlas/index.html) instead of the test's.
Skipped where chromium or chromedriver (Debian packages) or selenium are missing; CI installs them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from atlas_tables import METHODS, write_concept_tables, write_feature_tables, write_tables
from browser import chromium, chromium_missing, requests, save
from workflow_rules import REPO

from kneurons.config import validate_config
from kneurons.jobs.atlas import run_atlas_job
from kneurons.settings import job_settings

if chromium_missing():
    pytest.skip(chromium_missing(), allow_module_level=True)
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("atlas")
    cfg = validate_config({"atlas": {"top_per_method": 10}, "stats": {"top_fraction": 0.1}})
    settings = job_settings("atlas", cfg)
    settings["methods"] = METHODS
    return run_atlas_job(write_tables(tmp), settings, tmp / "atlas" / "index.html")


@pytest.fixture(scope="module")
def feature_page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("atlas_features")
    cfg = validate_config({"atlas": {"top_per_method": 10}, "stats": {"top_fraction": 0.1}})
    settings = job_settings("atlas", cfg)
    settings["methods"] = METHODS
    inputs = {**write_tables(tmp), **write_feature_tables(tmp)}
    return run_atlas_job(inputs, settings, tmp / "atlas" / "index.html")


def rows(driver) -> list:
    return driver.find_elements(By.CSS_SELECTOR, "#neurons tbody tr")


def column(driver, key: str) -> list[str]:
    heads = [th.get_attribute("data-key") for th in driver.find_elements(By.CSS_SELECTOR, "#neurons th")]
    i = heads.index(key) + 1
    return [td.text for td in driver.find_elements(By.CSS_SELECTOR, f"#neurons tbody td:nth-child({i})")]


def test_page_works_offline_in_a_real_browser(browser, page):
    browser.get(page.as_uri())
    data = json.loads(browser.find_element(By.ID, "atlas-data").get_attribute("textContent"))
    n = len(data["neurons"])
    assert n > 10 and len(rows(browser)) == n
    assert browser.find_element(By.ID, "count").text == f"{n} of {n} neurons"
    # Sorting by a column reorders the table, both ways.
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="rank_activation"]').click()
    ranks = [int(x) for x in column(browser, "rank_activation")]
    assert ranks == sorted(ranks) and ranks != [int(x) for x in column(browser, "rank_ig")]
    browser.find_element(By.CSS_SELECTOR, 'th[data-key="rank_activation"]').click()
    assert [int(x) for x in column(browser, "rank_activation")] == sorted(ranks, reverse=True)
    # Filtering by module leaves only that module.
    Select(browser.find_element(By.ID, "filter-module")).select_by_value("k_proj")
    modules = column(browser, "module")
    assert modules and set(modules) == {"k_proj"}
    assert len(modules) == sum(r["module"] == "k_proj" for r in data["neurons"])
    Select(browser.find_element(By.ID, "filter-module")).select_by_value("")
    # The search box finds a neuron by name.
    browser.find_element(By.ID, "search").send_keys("L1.k_proj.3")
    assert column(browser, "id") == ["L1.k_proj.3"]
    browser.find_element(By.ID, "search").clear()
    browser.execute_script("document.getElementById('search').dispatchEvent(new Event('input'))")
    assert len(rows(browser)) == n
    save(browser, "atlas-overview.png")
    # Opening a characterised neuron shows its logo, windows, suppression and density cell.
    browser.find_element(By.CSS_SELECTOR, 'tr[data-id="L1.k_proj.3"]').click()
    logo = browser.find_element(By.CSS_SELECTOR, "#panel svg.logo")
    assert logo.size["width"] > 100 and logo.size["height"] > 100
    assert len(logo.find_elements(By.CSS_SELECTOR, "text.letter")) >= 7
    assert len(browser.find_elements(By.CSS_SELECTOR, "#panel .window")) == 3
    assert browser.find_elements(By.CSS_SELECTOR, "#panel table.density td.here")
    assert "own recall drop 0.500" in browser.find_element(By.ID, "panel").text
    browser.execute_script("document.getElementById('table').scrollIntoView()")
    save(browser, "atlas-neuron.png")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    remote = [u for u in requests(browser) if not u.startswith(("file:", "data:"))]
    assert not remote, remote


def test_screenshot_for_the_docs(browser, page):
    """docs/atlas-overview.png, the overview screenshot the README and docs show (written only
    with KNEURONS_ATLAS_DOCS=1)."""
    target = Path(os.environ.get("KNEURONS_ATLAS_PAGE") or page).resolve()
    browser.get(target.as_uri())
    assert rows(browser)
    shot = save(browser, "atlas-overview-docs.png")
    if os.environ.get("KNEURONS_ATLAS_DOCS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "atlas-overview.png")


def open_feature(driver, page: Path) -> str | None:
    """Open ``page``, show its SAE features only and open the first characterised one's panel
    (its id; None on a page without features)."""
    driver.get(page.as_uri())
    data = json.loads(driver.find_element(By.ID, "atlas-data").get_attribute("textContent"))
    if "features" not in data:
        return None
    Select(driver.find_element(By.ID, "filter-unit")).select_by_value("feature")
    fid = next(r["id"] for r in data["features"]["rows"] if r["characterised"])
    driver.find_element(By.CSS_SELECTOR, f'tr[data-id="{fid}"]').click()
    # the click scrolls the wide table sideways; show it from its first column
    driver.execute_script("document.querySelector('.table-wrap').scrollLeft = 0")
    driver.execute_script("document.getElementById('table').scrollIntoView()")
    return fid


def test_sae_features_are_rows_with_a_neurons_panel(browser, feature_page):
    fid = open_feature(browser, feature_page)
    data = json.loads(browser.find_element(By.ID, "atlas-data").get_attribute("textContent"))
    n_features, n_neurons = len(data["features"]["rows"]), len(data["neurons"])
    assert fid == "L2.sae.31"
    assert set(column(browser, "module")) == {"sae"} and len(rows(browser)) == n_features
    assert browser.find_element(By.ID, "count").text == f"{n_features} of {n_features + n_neurons} units"
    panel = browser.find_element(By.ID, "panel")
    assert "SAE feature 31 of the residual stream entering layer 2" in panel.text
    assert "FVU 0.0456" in panel.text and "Ranks among the 40 SAE features" in panel.text
    assert len(panel.find_elements(By.CSS_SELECTOR, "svg.logo text.letter")) >= 7
    assert len(panel.find_elements(By.CSS_SELECTOR, ".window")) == 3
    assert "density statistics count neurons only" in panel.text
    save(browser, "atlas-feature.png")
    Select(browser.find_element(By.ID, "filter-unit")).select_by_value("neuron")
    assert "sae" not in column(browser, "module") and len(rows(browser)) == n_neurons
    assert browser.find_elements(By.CSS_SELECTOR, "#saes #sae-table")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    remote = [u for u in requests(browser) if not u.startswith(("file:", "data:"))]
    assert not remote, remote


def test_feature_screenshot_for_the_docs(browser, feature_page):
    """docs/atlas-feature.png, an SAE feature's panel (written only with KNEURONS_ATLAS_DOCS=1;
    KNEURONS_ATLAS_PAGE: a run's page with features)."""
    target = Path(os.environ.get("KNEURONS_ATLAS_PAGE") or feature_page).resolve()
    if open_feature(browser, target) is None:
        pytest.skip(f"{target} has no SAE features")
    assert browser.find_elements(By.CSS_SELECTOR, "#panel svg.logo")
    shot = save(browser, "atlas-feature-docs.png")
    if os.environ.get("KNEURONS_ATLAS_DOCS") == "1":
        shutil.copyfile(shot, REPO / "docs" / "atlas-feature.png")


@pytest.fixture(scope="module")
def concept_page(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("atlas_concepts")
    cfg = validate_config({"atlas": {"top_per_method": 10}, "stats": {"top_fraction": 0.1}})
    settings = job_settings("atlas", cfg)
    settings["methods"] = METHODS
    inputs = {**write_tables(tmp), **write_feature_tables(tmp), **write_concept_tables(tmp)}
    return run_atlas_job(inputs, settings, tmp / "atlas" / "index.html")


def test_units_filter_by_concept_and_show_their_concepts(browser, concept_page):
    browser.get(concept_page.as_uri())
    data = json.loads(browser.find_element(By.ID, "atlas-data").get_attribute("textContent"))
    everyone = data["neurons"] + data["features"]["rows"]
    Select(browser.find_element(By.ID, "filter-concept")).select_by_value("Helix")
    shown = column(browser, "id")
    assert sorted(shown) == sorted(["L0.q_proj.6", "L1.fc1.30"])
    assert all("Helix" in text for text in column(browser, "concepts"))
    Select(browser.find_element(By.ID, "filter-concept")).select_by_value("Binding site: ATP")
    assert sorted(column(browser, "id")) == sorted(["L0.q_proj.6", "L2.sae.7"])
    Select(browser.find_element(By.ID, "filter-concept")).select_by_value("")
    assert len(rows(browser)) == len(everyone)
    browser.find_element(By.CSS_SELECTOR, 'tr[data-id="L0.q_proj.6"]').click()
    table = browser.find_element(By.CSS_SELECTOR, "#panel table.concepts")
    assert len(table.find_elements(By.CSS_SELECTOR, "tr.aligned")) == 2
    assert "Binding site: ATP" in table.text and "0.812" in table.text and "[within]" not in table.text
    assert browser.find_elements(By.CSS_SELECTOR, "#concepts #concept-summary")
    save(browser, "atlas-concepts.png")
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    remote = [u for u in requests(browser) if not u.startswith(("file:", "data:"))]
    assert not remote, remote
