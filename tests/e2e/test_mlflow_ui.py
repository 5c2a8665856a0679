"""The MLflow UI, checked in a real browser (headless Debian Chromium driven by Selenium).

A store is made by a tiny real pipeline run (simulate -> validate -> train twice -> register), the MLflow UI is
started on 127.0.0.1 against it, and the browser opens the experiment, compares the two runs and opens the
registered model with its `champion` alias; `dvc plots diff` of the same pipeline is drawn from the offline page.
Screenshots land in the test's tmp folder (path printed).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(tiny_pipeline):
    port = _free_port()
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            tiny_pipeline["tracking_uri"],
            "--default-artifact-root",
            tiny_pipeline["artifact_root"],
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("mlflow server did not come up within 90 s")
    yield url
    os.killpg(proc.pid, 15)
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("Debian chromium + chromium-driver are not installed (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait_for_text(driver, *texts, timeout=60):
    deadline = time.time() + timeout
    body = ""
    while time.time() < deadline:
        body = driver.find_element("tag name", "body").text
        if all(t in body for t in texts):
            return body
        time.sleep(0.5)
    missing = [t for t in texts if t not in body]
    raise AssertionError(f"page never showed {missing!r}; it showed:\n{body[-3000:]}")


#: the compare page's metrics are two virtualised grids (names, values) whose cells share a row's ``top``: find
#: the metric's cell, scrolling the grids until it is rendered, and return the other cells of its row
_ROW_JS = """
const key = arguments[0];
const cells = Array.from(document.querySelectorAll('.ReactVirtualized__Grid__innerScrollContainer > *'));
const cell = cells.find(e => e.textContent.trim() === key);
if (!cell) { document.querySelectorAll('.ReactVirtualized__Grid').forEach(g => { g.scrollTop += 250; }); return null; }
return cells.filter(e => e.style.top === cell.style.top && e !== cell).map(e => e.textContent.trim());
"""


def _metric_row(driver, key: str, timeout: float = 60) -> list[str]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        row = driver.execute_script(_ROW_JS, key)
        if row is not None:
            return row
        time.sleep(0.2)
    raise AssertionError(f"the compare page never showed the metric {key}")


def _ui_number(v: float) -> str:
    """A metric as MLflow's UI prints it (Utils.formatMetric: 3 decimals below 10, JavaScript number formatting)."""
    import math

    if v == 0:
        return "0"
    r = math.floor(v * 1000 + 0.5) / 1000
    return str(int(r)) if r == int(r) else repr(r)


def test_experiment_compare_and_registry_in_a_browser(ui, browser, tiny_pipeline, tmp_path):
    shots = tmp_path / "screenshots"
    shots.mkdir()
    exp_id = tiny_pipeline["experiment_id"]
    run_names = tiny_pipeline["run_names"]

    browser.get(f"{ui}/#/experiments/{exp_id}/runs")  # the "Training runs" tab
    body = _wait_for_text(browser, *run_names, "2 matching runs")
    browser.save_screenshot(str(shots / "experiment.png"))
    assert "no2hotspots" in body  # the experiment's name (the registry page is checked below)

    import json

    runs = json.dumps(tiny_pipeline["run_ids"])
    browser.get(f"{ui}/#/compare-runs?runs={runs}&experiments={json.dumps([exp_id])}")
    _wait_for_text(browser, *run_names, "Parameters", "train.lr", "Metrics")
    browser.save_screenshot(str(shots / "compare.png"))
    # Table 1 on the compare page, both runs: each quartile's row holds the two runs' values as the UI rounds them
    for q in ("q1", "q2", "q3"):
        key = f"score/test/mark/every/pixel_recall_{q}_all"  # Table 1, all classes, every source counted
        shown = _metric_row(browser, key)
        want = [_ui_number(t[key]) for t in tiny_pipeline["table1"]]
        assert sorted(shown) == sorted(want), (key, shown, want)
    assert all(len(t) >= 12 for t in tiny_pipeline["table1"])  # 1Q/2Q/3Q x all/low/mid/high logged for both

    name = tiny_pipeline["model_name"]
    browser.get(f"{ui}/#/models/{name}")
    # two versions; `champion` sits on the better one (the other has `challenger` only if it came second)
    body = _wait_for_text(browser, name, "Version 1", "Version 2", "champion")
    browser.save_screenshot(str(shots / "registered_model.png"))
    print(f"screenshots in {shots}")
    assert all((shots / f).stat().st_size > 10_000 for f in ("experiment.png", "compare.png", "registered_model.png"))


#: the plots dvc.yaml declares at top level (each a div of DVC's page, drawn by vega-embed)
PLOTS = ("learning_curves", "table1_median_recall", "threshold_curve", "table2_detection_rate")
_DRAWN_JS = """
return arguments[0].map(id => {
  const e = document.getElementById(id);
  const c = e ? e.querySelector('canvas, svg') : null;
  return [id, c ? c.clientWidth * c.clientHeight : 0];
});
"""


def test_dvc_plots_diff_draws_table1_and_table2_offline_in_a_browser(browser, tiny_repo, repo_root, tmp_path):
    """`dvc plots diff` of the tiny pipeline's results, rendered with the offline template (vega inlined; the page
    loads no script from the network) and drawn by a real browser from a file:// URL."""
    from .conftest import run, tiny_env

    env = tiny_env(tiny_repo)
    cached = repo_root / ".cache" / "plots" / "offline.html"  # built by `make venv` (npm pack, once)
    if cached.exists():
        (tiny_repo / ".cache" / "plots").mkdir(parents=True, exist_ok=True)
        shutil.copy2(cached, tiny_repo / ".cache" / "plots" / "offline.html")
    run([sys.executable, "-m", "no2hotspots.plots_offline"], tiny_repo, env)
    config = run(["dvc", "config", "--local", "--list"], tiny_repo, env).stdout
    if "plots.html_template" not in config:
        pytest.skip("no offline plots template (npm not available and none cached by make venv)")
    out = tmp_path / "plots"
    run(["dvc", "plots", "diff", "HEAD", "-o", str(out)], tiny_repo, env)
    html = (out / "index.html").read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # nothing fetched: vega is inlined
    browser.get((out / "index.html").as_uri())
    deadline = time.time() + 60
    while time.time() < deadline:
        drawn = dict(browser.execute_script(_DRAWN_JS, list(PLOTS)))
        if all(drawn.values()):
            break
        time.sleep(0.5)
    assert all(drawn.values()), f"plots not drawn: {drawn}"
    browser.save_screenshot(str(tmp_path / "dvc_plots_diff.png"))
    print(f"screenshot in {tmp_path / 'dvc_plots_diff.png'}")
    assert (tmp_path / "dvc_plots_diff.png").stat().st_size > 10_000
