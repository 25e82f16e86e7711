"""The default image's packages, checked inside a sandbox: every top-level package of
docker/sandbox/requirements.in imports, the installed set is consistent, a seaborn figure
renders with Liberation fonts, pandas' Styler renders (jinja2), and the thread pools stay
capped.

The image is $SANDBOX_TEST_IMAGE if set (to check an image built under another tag),
else the default image.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.sandbox import SandboxManager
from sandbox_kernel.sandbox.image import default_image

pytestmark = pytest.mark.docker

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS_IN = ROOT / "docker" / "sandbox" / "requirements.in"
IMAGE = os.environ.get("SANDBOX_TEST_IMAGE") or default_image()

#: distribution name in requirements.in -> the module it is imported as
IMPORT_NAME = {
    "ipython": "IPython", "matplotlib-inline": "matplotlib_inline", "psutil": "psutil",
    "tqdm": "tqdm", "numpy": "numpy", "pandas": "pandas", "pyarrow": "pyarrow",
    "matplotlib": "matplotlib", "seaborn": "seaborn", "scipy": "scipy",
    "scikit-learn": "sklearn", "scikit-image": "skimage", "statsmodels": "statsmodels.api",
    "sympy": "sympy", "networkx": "networkx", "numexpr": "numexpr", "jinja2": "jinja2",
    "ipywidgets": "ipywidgets", "ipympl": "ipympl", "comm": "comm", "openpyxl": "openpyxl",
    "requests": "requests", "beautifulsoup4": "bs4", "lxml": "lxml.etree",
}


def top_level() -> list[str]:
    names = []
    for raw in REQUIREMENTS_IN.read_text().splitlines():
        line = raw.split("#")[0].strip()
        if line:
            names.append(re.split(r"[<>=!~;\[ ]", line)[0].lower())
    return names


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    with SandboxManager(image=IMAGE, cleanup_interval=0) as manager:
        yield manager.open_session()
        manager.backend.client.close()


def python(sandbox: Any, code: str, timeout: float = 120) -> str:
    r = sandbox.execute_command(["python3", "-c", code], timeout=timeout)
    assert r.exit_code == 0, r.stderr[-3000:]
    return str(r.stdout)


def test_the_import_table_covers_requirements_in() -> None:
    assert sorted(top_level()) == sorted(IMPORT_NAME)


def test_every_top_level_package_imports(sandbox: Any) -> None:
    code = (
        "import importlib, importlib.metadata as md, json, sys\n"
        f"names = {IMPORT_NAME!r}\n"
        "out = {}\n"
        "for dist, mod in names.items():\n"
        "    importlib.import_module(mod)\n"
        "    out[dist] = md.version(dist)\n"
        "print(json.dumps(out))\n")
    versions = json.loads(python(sandbox, code))
    assert set(versions) == set(IMPORT_NAME)
    assert all(re.match(r"\d", v) for v in versions.values()), versions


def test_installed_set_is_consistent(sandbox: Any) -> None:
    r = sandbox.execute_command(["python3", "-m", "pip", "check"], timeout=120)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "No broken requirements found" in r.stdout


def test_seaborn_figure_renders_with_liberation_fonts(sandbox: Any) -> None:
    code = """
import io, logging, matplotlib
matplotlib.use("agg")
from matplotlib import font_manager
records = []
logging.getLogger("matplotlib.font_manager").addHandler(
    type("H", (logging.Handler,), {"emit": lambda self, r: records.append(r.getMessage())})())
path = font_manager.findfont("Liberation Sans", fallback_to_default=False)
import seaborn as sns, pandas as pd
sns.set_theme(style="whitegrid", font="Liberation Sans")
df = pd.DataFrame({"day": list("MTWTF") * 4, "tips": range(20), "smoker": ["y", "n"] * 10})
ax = sns.barplot(data=df, x="day", y="tips", hue="smoker")
ax.set_title("tips by day")
buf = io.BytesIO()
ax.figure.savefig(buf, format="png", dpi=60)
png = buf.getvalue()
print(path)
print(ax.title.get_fontname(), len(png), png[:8] == b"\\x89PNG\\r\\n\\x1a\\n")
print("findfont warnings:", [m for m in records if "not found" in m])
"""
    path, fontline, warnings = python(sandbox, code).strip().splitlines()
    assert "/usr/share/fonts/truetype/liberation" in path, path
    name, size, is_png = fontline.rsplit(" ", 2)
    assert name == "Liberation Sans"
    assert is_png == "True" and int(size) > 5000
    assert warnings == "findfont warnings: []"


def test_pandas_styler_renders_html(sandbox: Any) -> None:
    code = """
import pandas as pd
df = pd.DataFrame({"a": [1, 5, 3], "b": [0.5, 0.1, 0.9]})
html = df.style.highlight_max(color="gold").format(precision=2).to_html()
print("<table" in html, "<style" in html, "gold" in html, "0.90" in html)
"""
    assert python(sandbox, code).split() == ["True"] * 4


def test_thread_pools_are_capped(sandbox: Any) -> None:
    code = """
import os, pyarrow, numexpr, threadpoolctl, numpy, scipy.linalg, sklearn
limits = {i["internal_api"]: i["num_threads"] for i in threadpoolctl.threadpool_info()}
print(pyarrow.io_thread_count(), pyarrow.cpu_count(), numexpr.get_num_threads(),
      max(limits.values()))
"""
    assert python(sandbox, code).split() == ["2", "1", "1", "1"]
