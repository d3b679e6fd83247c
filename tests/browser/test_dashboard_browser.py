"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against logged traffic.

The page is served by uvicorn on a free localhost port, mounted at /dashboard as the server does,
over a day of traffic for two versions written by the real prediction-log writer. The test checks
that every chart drew data (SVG elements, counts in the DOM), that the page made no error, that
the controls work, and saves a screenshot under the test's tmp dir.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from modelport.monitoring.dashboard import create_dashboard_app
from monitoring import scenario  # tests/ is on sys.path (rootdir-based package discovery)

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
CHARTS = ("traffic", "latency", "errors", "drift", "quality", "aliases", "runs")


def require_chromium() -> None:
    """Fail under CI (``.ci/run`` installs it), skip elsewhere, when Debian's Chromium is missing."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return
    message = f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message}, and CI=true requires it.")
    pytest.skip(f"{message}; install it to run the browser test.")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    world = scenario.build(tmp_path_factory.mktemp("browser"))
    dashboard = create_dashboard_app(
        world.log_dir, feedback_dir=world.feedback_dir, registry=world.registry, runs=world.runs
    )
    app = Starlette(routes=[Mount("/dashboard", app=dashboard)])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/dashboard/"
    finally:
        server.should_exit = True
        thread.join(10)
        world.registry.close()


def test_the_dashboard_draws_every_chart_with_data(base_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            page.goto(base_url)
            page.wait_for_selector("body[data-ready=true]", timeout=20_000)

            for chart in CHARTS:
                points = page.get_attribute(f"#chart-{chart} svg", "data-points")
                assert points is not None, f"chart {chart} drew nothing"
                assert int(points) > 0, f"chart {chart} drew nothing"
            assert page.locator("#chart-traffic rect.mp-bar").count() > 20
            line = page.locator("#chart-latency path.mp-line").first.get_attribute("d") or ""
            assert line.startswith("M")
            assert line.count("L") > 10
            assert page.get_attribute("#chart-drift svg", "data-points") == "5"  # four features and the prediction
            flagged = page.locator("#chart-drift rect.mp-hbar.flagged title").all_text_contents()
            assert [t.split(" ")[0] for t in flagged] == ["age", "predict"]
            assert page.get_attribute("#chart-runs svg", "data-points") == "3"
            assert page.locator("#chart-aliases rect.mp-segment").count() == 4
            assert page.inner_text("#tile-predictions") == "1600"
            assert page.inner_text("#tile-drift") == "1 / 4"
            assert page.inner_text("#tile-quality").endswith("%")
            assert "v2" in page.inner_text("#drift-caption")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)

            page.select_option("#version-select", "1")
            expect(page.locator("#drift-caption")).to_contain_text("v1's reference")
            assert page.locator("#chart-drift rect.mp-hbar.flagged").count() == 0
            page.select_option("#window-select", "1h")
            page.wait_for_selector("#chart-traffic [data-empty=true]")
            expect(page.locator("#chart-drift")).to_contain_text("No prediction of v1 in this window")
            assert page.inner_text("#tile-drift") == "\N{EN DASH}"
            assert "version=1" in page.url
            assert "window=1h" in page.url
            page.screenshot(path=str(tmp_path / "dashboard-v1-1h.png"), full_page=True)
        finally:
            browser.close()
    assert problems == []
    assert (tmp_path / "dashboard.png").stat().st_size > 50_000
