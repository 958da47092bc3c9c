"""The results UI in Debian's headless chromium (Playwright, no browser download): the experiment
page on a synthetic 10,000-trial experiment and on a real NNI one, and the compare page. Every
plot renders with a title the toolbar does not cover; a filter changes the table and every plot
together; screenshots go to test-output/browser/."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from live_service import serve
from nni_runner import NNIExperiment, finished_experiment, tiny_config
from synthetic_nni import make_nni_dir

from service.settings import Settings

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
PLOTS = ["plot-history", "plot-slice", "plot-parcoords", "plot-importance", "plot-curves",
         "plot-variance"]  # fmt: skip


@contextmanager
def browser_page(base: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is needed: apt-get install chromium"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        outside: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Any request leaving the machine would break the offline promise (no CDN).
        local = (base, "data:")
        page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
        page.set_default_timeout(90_000)
        yield page
        browser.close()
    assert errors == [] and outside == []


def assert_title_readable(page, plot_id: str) -> str:
    """The plot's title has text, lies inside the plot and does not meet the toolbar (shown
    while the mouse is over the plot)."""
    page.wait_for_selector(f"#{plot_id} .main-svg")
    page.hover(f"#{plot_id}", position={"x": 200, "y": 200})
    title = page.locator(f"#{plot_id} .gtitle")
    text = title.text_content() or ""
    assert text.strip(), f"{plot_id} has no title"
    t = title.bounding_box()
    mb = page.locator(f"#{plot_id} .modebar").bounding_box()
    box = page.locator(f"#{plot_id}").bounding_box()
    assert t and mb and box
    apart = (t["x"] + t["width"] <= mb["x"] or mb["x"] + mb["width"] <= t["x"]
             or t["y"] + t["height"] <= mb["y"] or mb["y"] + mb["height"] <= t["y"])  # fmt: skip
    assert apart, f"{plot_id}: title {t} under the toolbar {mb}"
    assert box["x"] <= t["x"] and t["x"] + t["width"] <= box["x"] + box["width"], plot_id
    assert box["y"] <= t["y"], plot_id
    return text


def plot_data(page, plot_id: str) -> list[dict]:
    return page.evaluate(f"document.getElementById('{plot_id}').data")


def n_points(trace: dict) -> int:
    return sum(1 for y in trace.get("y") or [] if y is not None)


def wait_rendered(page) -> None:
    page.wait_for_selector("body[data-rendered]")


def wait_importance(page, query: str) -> dict:
    page.wait_for_function(
        "(q) => document.getElementById('plot-importance').dataset.query === q", arg=query
    )
    return plot_data(page, "plot-importance")


def test_experiment_page_with_10000_trials(db_url, tmp_path):
    nni_dir = make_nni_dir(tmp_path, {"big": {
        "n_trials": 10_000, "epochs": 10, "seed": 5, "lambda_effect": {3: 1.0},
        "early_stopped": 0.05,
    }})  # fmt: skip
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)
    with serve(settings) as base, browser_page(base) as page:
        assert httpx.post(f"{base}/api/sync", timeout=300).json()["inserted"] == 10_000
        points = httpx.get(f"{base}/api/experiments/big/points", timeout=60).json()
        t0 = time.perf_counter()
        assert httpx.get(f"{base}/experiments/big", timeout=60).status_code == 200
        print(f"server: experiment page with 10,000 trials in {time.perf_counter() - t0:.2f} s")

        page.goto(f"{base}/experiments/big")
        wait_rendered(page)
        titles = [assert_title_readable(page, p) for p in PLOTS]
        assert "Optimization history" in titles[0] and "importance" in titles[3].lower()
        print("browser redraw:", page.evaluate("document.body.dataset.renderTimings"))
        # WebGL past a few thousand points.
        assert {t["type"] for t in plot_data(page, "plot-history")} == {"scattergl"}
        assert "of 10000 shown" in page.locator("#table-range").inner_text()
        assert page.locator("#trials tbody tr").count() == 50
        imp = wait_importance(page, "")
        assert any("λ3" in y for t in imp for y in t["y"])
        curves = {t["name"]: t for t in plot_data(page, "plot-curves")}
        n_stopped = points["status"].count("EARLY_STOPPED")
        assert n_stopped > 100
        assert n_points(curves[f"early-stopped ({n_stopped})"]) > 0
        assert n_points(curves["stopped here"]) == n_stopped
        page.screenshot(path=OUTPUT / "experiment-10k.png", full_page=True)

        # One filter: layers 3,4. The table, every plot and the importance follow it.
        page.select_option("#f-layers", ["3,4"])
        page.wait_for_function("() => document.body.dataset.rendered !== undefined && "
                               "location.search === '?layers=3%2C4'")  # fmt: skip
        wait_rendered(page)
        chosen = [i for i, la in enumerate(points["layers"]) if la == "3,4"]
        with_error = [i for i in chosen if points["val_error"][i] is not None]
        assert page.evaluate("document.body.dataset.rendered") == str(len(chosen))
        assert f"of {len(chosen)} shown" in page.locator("#table-range").inner_text()
        rows = page.locator("#trials tbody tr")
        assert rows.count() == 50
        assert set(page.locator("#trials tbody td:nth-child(4)").all_inner_texts()) == {"3,4"}
        params = page.locator("#trials tbody td:nth-child(10)").all_inner_texts()
        assert all("λ3=" in p and "λ4=" in p and "λ2" not in p for p in params)
        history = plot_data(page, "plot-history")
        assert sum(n_points(t) for t in history if t["name"] != "best so far") == len(with_error)
        slices = {t["name"]: n_points(t) for t in plot_data(page, "plot-slice")}
        assert slices == {"layer 2": 0, "layer 3": len(with_error), "layer 4": len(with_error)}
        par = plot_data(page, "plot-parcoords")[0]
        assert len(par["dimensions"][0]["values"]) == len(with_error)
        # One curve per trial (every trial reported an epoch): the best 5 apart, the others in
        # shared traces where a null ends each curve.
        curves = plot_data(page, "plot-curves")
        assert sum(1 for t in curves for x in t["x"] if x is None) == len(chosen) - 5
        variance = plot_data(page, "plot-variance")
        with_var = sum(points["var_end"][k][i] is not None for k in "234" for i in chosen)
        assert sum(n_points(t) for t in variance) == with_var > 0
        imp = wait_importance(page, "layers=3%2C4")
        names = {t["name"].split(" (")[0] for t in imp}
        assert names <= {"all trials", "layers=3,4"} and "layers=3,4" in names
        api = httpx.get(f"{base}/api/experiments/big/importance",
                        params={"layers": "3,4"}, timeout=120).json()  # fmt: skip
        bars = {t["name"].split(" (")[0]: dict(zip(t["y"], t["x"], strict=True)) for t in imp}
        assert bars["layers=3,4"]["λ3 · layers=3,4"] == pytest.approx(
            api["groups"][1]["raw"]["lambda_3"]
        )
        page.screenshot(path=OUTPUT / "experiment-10k-filtered.png", full_page=True)

        # An error bound: the server-side filter of the importance and the page's agree.
        page.fill("#f-max", "20")
        page.wait_for_function("() => location.search.includes('max_error=20')")
        wait_rendered(page)
        kept = [i for i in chosen if points["val_error"][i] is not None
                and points["val_error"][i] <= 20]  # fmt: skip
        assert page.evaluate("document.body.dataset.rendered") == str(len(kept))
        imp = wait_importance(page, "layers=3%2C4&max_error=20")
        n = int(next(t["name"] for t in imp if t["name"].startswith("all trials"))
                .split("(")[1].rstrip(")"))  # fmt: skip
        assert n == len(kept)


@pytest.fixture(scope="module")
def running_experiment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NNIExperiment]:
    """A finished NNI experiment whose manager still runs (the page links NNI's UI only then).
    Its own: the session's shared experiment is stopped by the end-to-end test."""
    home = tmp_path_factory.mktemp("nni-ui")
    with finished_experiment(home, tiny_config(), timeout=300) as exp:
        yield exp


@pytest.mark.nni
def test_experiment_page_of_a_real_nni_experiment(running_experiment, db_url):
    exp = running_experiment
    settings = Settings(database_url=db_url, nni_dir=exp.nni_dir, sync_interval=0)
    with serve(settings) as base, browser_page(base) as page:
        assert httpx.post(f"{base}/api/sync", timeout=120).json()["errors"] == []
        stored = httpx.get(f"{base}/api/experiments/{exp.id}/trials",
                           params={"limit": 100}).json()["items"]  # fmt: skip
        assert len(stored) == len(exp.trials) >= 3
        page.goto(f"{base}/experiments/{exp.id}")
        wait_rendered(page)
        for p in PLOTS:
            assert_title_readable(page, p)
        # The manager still runs: the page links NNI's own UI, and it answers there.
        link = page.locator("#nni-ui").get_attribute("href")
        assert link == f"http://127.0.0.1:{exp.port}/"
        assert httpx.get(link, timeout=10).status_code == 200
        assert page.locator("#trials tbody tr").count() == len(stored)
        rows = page.locator("#trials tbody tr")
        for k in range(rows.count()):
            cells = rows.nth(k).locator("td").all_inner_texts()
            layers, params = cells[3], cells[9]
            active = set() if layers == "none" else set(layers.split(","))
            for k2 in (2, 3, 4):
                assert (f"λ{k2}=" in params) == (str(k2) in active), (layers, params)
        wait_importance(page, "")
        page.screenshot(path=OUTPUT / "experiment-nni.png", full_page=True)


def test_compare_page_overlays_experiments_and_groups(settings):
    with serve(settings) as base, browser_page(base) as page:
        assert httpx.post(f"{base}/api/sync").json()["inserted"] == 160
        # Picked on the experiments page.
        page.goto(f"{base}/")
        page.check("input[name=experiment][value=expA]")
        page.check("input[name=experiment][value=expB]")
        page.click("#compare-experiments button[type=submit]")
        page.wait_for_url(f"{base}/compare?experiment=*")
        page.wait_for_selector("#plot-best .main-svg")
        best = plot_data(page, "plot-best")
        ids = [t["name"].split(" ")[0] for t in best]
        assert sorted(ids) == ["expA", "expB"]
        # Best so far never rises, and ends at each experiment's best error.
        for t, exp_id in zip(best, ids, strict=True):
            assert t["y"] == sorted(t["y"], reverse=True)
            want = httpx.get(f"{base}/api/experiments/{exp_id}").json()["best_val_error"]
            assert t["y"][-1] == pytest.approx(want)
        for k in (2, 3, 4):
            slice_ = plot_data(page, f"plot-slice-{k}")
            assert len(slice_) == 2 and all(n_points(t) > 0 for t in slice_)
        for p in ["plot-best", "plot-slice-2", "plot-slice-3", "plot-slice-4"]:
            assert_title_readable(page, p)
        table = page.locator("#best-configs tbody tr")
        assert table.count() == 2
        firsts = [table.nth(k).locator("td").nth(0).inner_text().split(" ")[0] for k in (0, 1)]
        assert firsts == ids
        page.screenshot(path=OUTPUT / "compare-experiments.png", full_page=True)

        # Groups picked in the form: (model, data set, budget) overlaid.
        page.goto(f"{base}/compare")
        keys = []
        for prefix in ("mlp4/digits/", "mlp6/mnist/"):
            box = page.locator(f"input[name=group][value^='{prefix}']").first
            keys.append(box.get_attribute("value"))
            box.check()
        page.click("#pick button[type=submit]")
        page.wait_for_url(f"{base}/compare?group={quote(keys[0], safe='')}"
                          f"&group={quote(keys[1], safe='')}")  # fmt: skip
        page.wait_for_selector("#plot-best .main-svg")
        names = [t["name"] for t in plot_data(page, "plot-best")]
        assert names == keys
        counts = [len(t["x"]) for t in plot_data(page, "plot-best")]
        listed = json.loads(page.locator("#compare-data").text_content())
        assert counts == [sum(v is not None for v in s["points"]["val_error"]) for s in listed]
        assert counts[0] > 100  # expA and expB together
        page.screenshot(path=OUTPUT / "compare-groups.png", full_page=True)


def test_experiment_page_reloads_its_trials_while_nni_runs(db_url, tmp_path):
    from sqlalchemy import update
    from synthetic_nni import write_nni_sqlite

    from storage.db import Database
    from storage.models import Experiment

    nni_dir = make_nni_dir(tmp_path, {"live": {"n_trials": 20, "seed": 4}})
    settings = Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0,
                        ui_refresh_seconds=0.5)  # fmt: skip
    with serve(settings) as base, browser_page(base) as page:
        assert httpx.post(f"{base}/api/sync").json()["inserted"] == 20
        # What a sync of a live manager stores: the experiment runs.
        db = Database(db_url)
        with db.session_scope() as s:
            s.execute(update(Experiment).where(Experiment.nni_id == "live")
                      .values(status="RUNNING"))  # fmt: skip
        db.dispose()
        page.goto(f"{base}/experiments/live")
        wait_rendered(page)
        assert page.locator("#f-count").inner_text() == "20 of 20 trials"
        assert page.locator("#exp-badge").inner_text() == "RUNNING"
        # NNI finishes 10 more trials and stops; the open page follows without a reload.
        db_file = nni_dir / "live" / "db" / "nni.sqlite"
        db_file.unlink()
        write_nni_sqlite(db_file, "live", n_trials=30, seed=4)
        assert httpx.post(f"{base}/api/sync").json()["inserted"] == 10
        page.wait_for_function("document.getElementById('f-count').textContent === "
                               "'30 of 30 trials'")  # fmt: skip
        wait_rendered(page)
        assert page.locator("#exp-badge").inner_text() == "STOPPED"
        history = plot_data(page, "plot-history")
        stored = httpx.get(f"{base}/api/experiments/live").json()
        assert sum(n_points(t) for t in history if t["name"] != "best so far") == sum(
            1 for v in httpx.get(f"{base}/api/experiments/live/points").json()["val_error"]
            if v is not None
        ) and stored["n_trials"] == 30
