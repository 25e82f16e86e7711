"""The fidelity harness's local ipykernel has the image's versions of the packages the
corpus uses (pyproject.toml's test extra against docker/sandbox/requirements.lock)."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[2]


def test_test_extra_pins_match_the_image_lock() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["test"]
    pins = dict(re.fullmatch(r"([\w-]+)==([\w.]+)", r).groups() for r in extra if "==" in r)
    lock = dict(re.findall(r"^([\w-]+)==([\w.]+)", (ROOT / "docker/sandbox/requirements.lock")
                           .read_text(), re.M))
    assert {"numpy", "pandas", "matplotlib"} <= pins.keys()
    assert {name: lock.get(name) for name in pins} == pins
