"""JupyterLab in headless Chromium: run the demo notebook with the sandbox kernel and watch
the live resource monitor's memory figure rise while a memory-hungry cell runs."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = ROOT / "docs" / "jupyterlab-demo.png"
MEMORY = re.compile(r"(\d+) MB / (\d+) MB")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    shutil.copy(ROOT / "notebooks" / "demo.ipynb", tmp_path / "demo.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    home = tmp_path / "home"
    home.mkdir()
    settings = home / "lab-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}')
    log = (tmp_path / "jupyterlab.log").open("wb")
    env = {**os.environ, "HOME": str(home), "JUPYTER_CONFIG_DIR": str(home / ".jupyter"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(home / "lab-settings")}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--allow-root",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=log, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("JupyterLab did not start") from None
                time.sleep(0.3)
        yield f"{base}/lab/tree/demo.ipynb?token={token}", tmp_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_demo_in_jupyterlab_shows_live_monitor(lab: tuple[str, Path], tmp_path: Path) -> None:
    """`make screenshot` runs this with SANDBOX_UPDATE_SCREENSHOT=1 to refresh README's image."""
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run tests/e2e/ensure-browser.sh (make test "
                    "does)")
    from playwright.sync_api import sync_playwright

    url, _ = lab
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            page.wait_for_selector(".jp-Notebook", timeout=60_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.jp-Toolbar-kernelName, "
                ".jp-KernelName')].some(e => e.textContent.includes('sandbox'))",
                timeout=60_000)
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']",
                                   timeout=60_000)
            page.click("text=Run", timeout=10_000)
            page.click("text=Run All Cells", timeout=10_000)

            monitor = page.locator(".sandbox-monitor").first
            monitor.wait_for(timeout=60_000)
            seen: list[int] = []
            limit = 0
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                text = monitor.inner_text()
                m = MEMORY.search(text)
                if m:
                    seen.append(int(m.group(1)))
                    limit = int(m.group(2))
                if len(seen) > 5 and max(seen) - min(seen) >= 100:
                    break
                time.sleep(0.25)
            assert limit == 512, f"monitor shows no memory limit: {monitor.inner_text()!r}"
            assert seen and max(seen) - min(seen) >= 100, (
                f"memory figure did not rise while the memory-hungry cell ran: {seen}")

            last_prompt = page.locator(".jp-Cell .jp-InputPrompt").last
            page.wait_for_function(
                "(el) => /\\[\\d+\\]/.test(el.textContent)", arg=last_prompt.element_handle(),
                timeout=180_000)
            monitor = page.locator(".sandbox-monitor").first
            monitor.scroll_into_view_if_needed()
            monitor.wait_for(state="visible", timeout=30_000)
            page.mouse.wheel(0, -250)
            page.wait_for_timeout(1500)
            shot = SCREENSHOT if os.environ.get("SANDBOX_UPDATE_SCREENSHOT") else \
                tmp_path / SCREENSHOT.name
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
            assert "error" not in (monitor.inner_text().lower())
        finally:
            browser.close()
