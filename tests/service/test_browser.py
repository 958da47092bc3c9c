"""Headless chromium (Debian's) through Playwright: the three pages render rows and plots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from live_service import serve

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"


@pytest.fixture
def server(settings):
    with serve(settings) as base:
        assert httpx.post(f"{base}/api/sync").json()["inserted"] == 160
        yield base


def test_pages_show_rows_and_plots(server, tmp_path):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is needed: apt-get install chromium"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # Any request leaving the machine would fail the offline promise.
        outside = []
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if not r.url.startswith(server) and not r.url.startswith("data:")
                else None
            ),
        )

        page.goto(f"{server}/")
        assert page.locator("#experiments tbody tr").count() == 3
        page.screenshot(path=tmp_path / "experiments.png", full_page=True)

        page.click("text=expA")
        page.wait_for_url(f"{server}/experiments/expA")
        page.wait_for_selector("body[data-rendered]", timeout=60_000)
        # The table is paged (50 rows) and says how many trials there are.
        assert page.locator("#trials tbody tr").count() == 50
        assert "(1–50 of 80 shown)" in page.locator("#table-range").inner_text()
        for plot in ("plot-history", "plot-slice", "plot-curves", "plot-variance"):
            page.wait_for_selector(f"#{plot} .main-svg", timeout=20_000)
        assert page.locator("#plot-slice .scatterlayer .trace").count() == 3  # layers 2, 3, 4
        # Sorted by validation error; a click on "Val error %" turns it descending, over all
        # 80 trials (not only the page shown).
        page.locator("#trials th", has_text="Val error %").click()
        cells = page.locator("#trials tbody tr td:nth-child(7)").all_inner_texts()
        values = [float(c) for c in cells if c.strip()]
        assert values == sorted(values, reverse=True)
        worst = {"sort": "val_error", "order": "desc", "limit": 1}
        best = httpx.get(f"{server}/api/experiments/expA/trials", params=worst).json()
        assert values[0] == pytest.approx(best["items"][0]["val_error"], abs=1e-3)
        page.screenshot(path=tmp_path / "experiment.png", full_page=True)

        page.goto(f"{server}/models/mlp4/digits")
        assert page.locator("#variance-ranking tbody tr").count() == 3
        assert page.locator("#best-config table tr").count() >= 5
        # The best trial regularizes layer 4 only: its λ is shown, the unused λ of 2 and 3 are not.
        best = page.locator("#best-config table").inner_text()
        assert "λ of layer 4" in best and "lambda_2" not in best and "lambda_3" not in best
        page.wait_for_selector("#plot-recommendation .main-svg", timeout=20_000)
        # Search trials only: the verdict says so, with the winner's-curse caveat.
        assert "(unconfirmed)" in page.locator("#verdict h2").inner_text()
        assert "luckiest" in page.locator("#caveat").inner_text()
        assert page.locator("#verdict-table tbody tr").count() >= 2  # vanilla + NSR at least
        # The page opens with the verdict's sentence (the API's), and its row is highlighted.
        summary = httpx.get(f"{server}/api/models/mlp4/digits/compare").json()["summary"]
        assert page.locator("#answer").inner_text() == summary and "λ" in summary
        best_row = page.locator("#verdict-table tr.best")
        assert best_row.count() == 1 and best_row.locator("th").inner_text().startswith("layers 4")
        shade = best_row.locator("td").first.evaluate("e => getComputedStyle(e).backgroundColor")
        assert shade not in ("rgba(0, 0, 0, 0)", "transparent")
        budget = page.locator("#budget code").inner_text()
        # "Show the plan only": the real endpoint with start=false, the YAML for nnictl.
        page.click("#plan-button")
        page.wait_for_selector("#plan-yaml:not([hidden])")
        plan = page.locator("#plan-yaml").inner_text()
        assert "name: Batch" in plan and "combine_params" in plan and "seed: 1000" in plan
        # The confirm button POSTs to the API; NNI itself is not started here (the request is
        # answered by the test), the page shows what was started.
        posted = []

        def answer(route):
            posted.append(route.request)
            plan = {"n_trials": 6, "configurations": [{}, {}], "seeds": [1000, 1001, 1002]}
            route.fulfill(status=200, content_type="application/json", body=json.dumps(
                {"plan": plan, "started": True, "nni_id": "abc123",
                 "nni_url": "http://127.0.0.1:8081/", "config_path": "/x.yml"}))  # fmt: skip

        page.route("**/api/models/mlp4/digits/confirm*", answer)
        page.click("#confirm-button")
        page.wait_for_selector("#confirm-result a")
        assert posted and posted[0].method == "POST" and "start=true" in posted[0].url
        query = parse_qs(urlsplit(posted[0].url).query)
        assert query["budget"] == [budget] and query["start"] == ["true"]
        assert "NNI experiment abc123" in page.locator("#confirm-result").inner_text()
        page.screenshot(path=tmp_path / "model.png", full_page=True)
        browser.close()
    assert outside == []
    for name in ("experiments", "experiment", "model"):
        assert (tmp_path / f"{name}.png").stat().st_size > 10_000
        shutil.copy(tmp_path / f"{name}.png", OUTPUT / f"{name}.png")


@pytest.fixture
def lambda_server(tmp_path, db_url):
    from synthetic_nni import make_nni_dir

    from service.settings import Settings

    # λ on layer 4 matters (best at λ = 1): enough trials for a 1-D fit of each layer and a 2-D
    # fit of "3,4".
    nni_dir = make_nni_dir(tmp_path / "lam", {
        "expL": {"n_trials": 200, "model": "mlp4", "dataset": "digits", "seed": 5,
                 "lambda_effect": {4: 1.0}},
    })  # fmt: skip
    with serve(Settings(database_url=db_url, nni_dir=nni_dir, sync_interval=0)) as base:
        assert httpx.post(f"{base}/api/sync", timeout=120).status_code == 200
        yield base


def test_pages_draw_the_fitted_lambda_band_and_contour(lambda_server, tmp_path):
    from playwright.sync_api import sync_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium is needed: apt-get install chromium"
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path in ("/models/mlp4/digits", "/experiments/expL"):
            page.goto(f"{lambda_server}{path}")
            page.wait_for_selector("#lambda-response[data-drawn]", timeout=120_000)
            # 1-D: the band is a filled trace under the fitted mean, over the trials' points.
            one = page.locator("#lr-plot-4")
            assert one.locator(".scatterlayer .trace").count() == 4  # band ×2, mean, trials
            assert one.locator(".js-fill").count() >= 1
            assert one.locator(".scatterlayer .points path").count() > 20
            assert "recommended λ" in one.locator(".gtitle").text_content()
            # 2-D: a contour of the fitted mean for layers 3 and 4.
            two = page.locator("#lr-plot-3-4")
            assert two.locator(".contourlayer .contour").count() == 1
            assert two.locator(".contourlayer path").count() > 3
            name = "lambda-model" if path.startswith("/models") else "lambda-experiment"
            page.locator("#lambda-response").screenshot(path=tmp_path / f"{name}.png")
            shutil.copy(tmp_path / f"{name}.png", OUTPUT / f"{name}.png")
        browser.close()
