"""Pages opened in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium).

``chromium_missing()`` says why a browser test cannot run here (None when it can); ``chromium()``
starts the system driver (selenium never downloads one). ``check_report`` is what a person sees of
the Snakemake report: the verdict table on the first screen, a claim's figure one click away, and
the neuron atlas opening from it.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from workflow_rules import REPO

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTEFACTS = REPO / "tests" / "artefacts"
WINDOW = (1400, 1000)
#: The narrowest window the verdict table must fit without scrolling sideways (a laptop's).
NARROW = (1280, 800)


def chromium_missing() -> str | None:
    """Why no browser test can run here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (the `test` extra)"
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        return f"{CHROMIUM} or {DRIVER} missing: apt-get install chromium chromium-driver (.ci/run does)"
    return None


def chromium():
    """A headless Chromium with the browser console and network logs kept."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)


def requests(driver) -> list[str]:
    """URLs the page asked for since the last call (Chrome's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def save(driver, name: str) -> Path:
    """A screenshot in tests/artefacts/ (git-ignored)."""
    ARTEFACTS.mkdir(exist_ok=True)
    path = ARTEFACTS / name
    driver.save_screenshot(str(path))
    return path


def _wait(condition, timeout: float = 20.0, what: str = "the page"):
    """``condition()``'s first truthy value within ``timeout`` seconds."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > end:
            assert value, f"timed out waiting for {what}"
            return value
        time.sleep(0.2)


def fits_narrow(driver, report: Path, n_claims: int) -> Path:
    """In a ``NARROW`` window: the verdict table's every cell (notes and figure links included)
    lies within the window's width, the table is not scrolled sideways, and the sets line is on the
    first screen. Returns the screenshot."""
    from selenium.webdriver.common.by import By

    driver.set_window_size(*NARROW)
    driver.get(Path(report).resolve().as_uri())
    table = _wait(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#kn-verdicts table"), what="the verdict table"
    )[0]
    width = driver.execute_script("return document.documentElement.clientWidth")
    edges = driver.execute_script(
        "var t = arguments[0], box = t.parentElement;"
        "return {table: t.getBoundingClientRect().right, scroll: box.scrollWidth - box.clientWidth,"
        " cells: Array.from(t.querySelectorAll('td, th')).map(c => c.getBoundingClientRect().right),"
        " links: Array.from(t.querySelectorAll('td a')).map(a => a.getBoundingClientRect().right)}",
        table,
    )
    assert edges["table"] <= width and edges["scroll"] <= 0, (width, edges["table"], edges["scroll"])
    assert max(edges["cells"]) <= width and len(edges["links"]) <= n_claims, (width, max(edges["cells"]))
    assert all(0 < right <= width for right in edges["links"]), (width, edges["links"])
    sets = driver.find_elements(By.CSS_SELECTOR, "#kn-verdicts p.sets")
    assert sets and 0 <= sets[0].rect["y"] < NARROW[1], "the sets line is not on the first screen"
    return save(driver, "report-first-screen-1280.png")


def check_report(driver, report: Path, n_claims: int, shot: str = "report-first-screen.png") -> Path:
    """Open ``report`` (``snakemake --report x.html``) and check what a person sees; returns the
    first screen's screenshot.

    The first screen holds the verdict table (``n_claims`` rows, each with its verdict) inside the
    window; in a ``NARROW`` window (1280 px) the whole table, notes and figure links included, fits
    its width, and the line that counts the sets judged and those at baseline is on the first
    screen; a claim's figure link shows that figure (an image with pixels) in one click; the atlas
    link opens the atlas inside the report with its neuron table (a page, not a blank frame).
    """
    from selenium.webdriver.common.by import By

    fits_narrow(driver, report, n_claims)
    driver.set_window_size(*WINDOW)
    driver.get(Path(report).resolve().as_uri())
    table = _wait(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#kn-verdicts table"), what="the verdict table"
    )[0]
    rows = table.find_elements(By.CSS_SELECTOR, "tbody tr")
    assert len(rows) == n_claims, f"{len(rows)} verdict rows for {n_claims} claims"
    # the verdict, then (a run of several fills) whether it holds under every fill, on its own line
    verdicts = [td.text.splitlines()[0] for td in table.find_elements(By.CSS_SELECTOR, "td.verdict")]
    assert len(verdicts) == n_claims and set(verdicts) <= {"supported", "not supported", "inconclusive"}
    # On the first screen: the table starts inside the window, its left edge visible, nothing scrolled.
    top = driver.execute_script("return arguments[0].getBoundingClientRect()", rows[0])
    assert 0 <= top["top"] < WINDOW[1] * 0.6 and top["left"] >= 0, top
    first = save(driver, shot)
    # A claim's figure, one click away.
    link = table.find_element(By.CSS_SELECTOR, "td a")
    name = link.text
    link.click()
    img = _wait(
        lambda: [
            i
            for i in driver.find_elements(By.CSS_SELECTOR, "img")
            if not (i.get_attribute("src") or "").startswith("data:image/svg")  # the report's logo
            and driver.execute_script("return arguments[0].naturalWidth", i) > 100
        ],
        what=f"the figure of link '{name}'",
    )
    assert img
    save(driver, "report-figure.png")
    # The atlas, from the first screen: a page in the report's frame with its neuron table.
    driver.get(Path(report).resolve().as_uri())
    _wait(lambda: driver.find_elements(By.LINK_TEXT, "open the neuron atlas"), what="the atlas link")[
        0
    ].click()
    frame = _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "iframe"), what="the atlas frame")[0]
    # embedded report: a blob URL made from the embedded copy (a data URL this size stays blank)
    src = frame.get_attribute("src") or ""
    assert src.startswith("blob:") or not src.startswith("data:"), src[:60]
    driver.switch_to.frame(frame)
    try:
        n_rows = _wait(
            lambda: driver.execute_script("return document.querySelectorAll('#neurons tbody tr').length"),
            what="the atlas's neuron table",
        )
        assert n_rows > 0 and "Verdicts" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        driver.switch_to.default_content()
    save(driver, "report-atlas.png")
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe
    return first
