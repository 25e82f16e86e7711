"""JupyterLab in headless Chromium: run the demo notebook with the sandbox kernel and watch
the live resource monitor's memory figure rise while a memory-hungry cell runs."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.lab import chromium, jupyterlab, open_and_run_all

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "jupyterlab-demo.png"
MEMORY = re.compile(r"(\d+) MB / (\d+) MB")


@pytest.fixture()
def lab(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    shutil.copy(ROOT / "notebooks" / "demo.ipynb", tmp_path / "demo.ipynb")
    state = tmp_path / "state"
    state.mkdir()
    with jupyterlab(tmp_path, state) as (base, token):
        yield f"{base}/lab/tree/demo.ipynb?token={token}", tmp_path


def test_demo_in_jupyterlab_shows_live_monitor(lab: tuple[str, Path], tmp_path: Path) -> None:
    """`make screenshot` runs this with SANDBOX_UPDATE_SCREENSHOT=1 to refresh README's image."""
    url, _ = lab
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        open_and_run_all(page, url)

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
