"""Live installs over the local backend: the real agent, installer, host resolution and
fetch, against an index on 127.0.0.1 serving wheels and npm tarballs built by the test.

No isolation here (one uid): the Docker suites prove who may write the package directory.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import package_index
import pytest

from sandbox_kernel.errors import InstallError
from sandbox_kernel.sandbox.install_policy import InstallPolicy, Rule, ToolPolicy
from sandbox_kernel.sandbox.installs import Installs, run_installer
from sandbox_kernel.sandbox.pip_fetch import PipRequest
from sandbox_kernel.sandbox.session import AsyncSession

from .conftest import in_loop


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str) -> None:
        self.lines.append(text)

    def fetching(self, name: str, done: int, total: int) -> None:
        pass


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[package_index.Index]:
    root = tmp_path_factory.mktemp("index")
    w = root / "wheels"
    package_index.make_wheel(w, "sk-demo", "1.0", {"sk_demo/__init__.py": "X = 'one'\n"})
    package_index.make_wheel(w, "sk-demo", "2.0", {"sk_demo/__init__.py": "X = 'two'\n"})
    package_index.make_wheel(w, "sk-app", "1.0", {"sk_app.py": "import sk_dep\n"},
                             requires=("sk-dep",))
    package_index.make_wheel(w, "sk-dep", "1.0", {"sk_dep.py": "OK = 1\n"})
    package_index.make_wheel(w, "sk-big", "1.0", {"sk_big.py": "# " + "x" * 300_000 + "\n"})
    package_index.make_wheel(w, "sk-win", "1.0", {"sk_win.py": ""}, tag="cp311-cp311-win_amd64")
    package_index.make_npm(root / "npm", "sk-odd", "1.0.0",
                           "module.exports = n => require('sk-num')(n) && n % 2 === 1;\n",
                           {"sk-num": "^1.0.0"})
    package_index.make_npm(root / "npm", "sk-num", "1.0.0",
                           "module.exports = n => typeof n === 'number';\n")
    with package_index.serve(root) as idx:
        yield idx


def policy(index: package_index.Index, **kw: Any) -> InstallPolicy:
    return InstallPolicy(pip_index_url=index.simple, npm_registry=index.npm, **kw)


def installs(index: package_index.Index, tmp: Path, **kw: Any) -> Installs:
    return Installs(policy(index, **kw), tmp / "cache")


async def py(session: AsyncSession, code: str) -> str:
    """Code in the Python worker (the local backend's other interpreters have no .pth file
    for the package directory, as the image's have); its stdout, or its error."""
    run = await session.run(code)
    out = [f.get("text", "") or f.get("evalue", "") async for f in run.events()
           if f["type"] in ("stream", "error")]
    return "".join(out).strip()


def test_pip_install_then_import_in_the_worker(index: package_index.Index,
                                               tmp_path: Path) -> None:
    inst, report = installs(index, tmp_path), Lines()

    async def go(session: AsyncSession) -> list[str]:
        await inst.pip(session, PipRequest(("sk-app",)), report)
        first = await py(session, "import sk_app, sk_dep\nprint(sk_dep.OK)")
        await session.restart_interpreter()  # an interpreter restart keeps them
        return [first, await py(session, "import sk_app; print('again')")]

    assert in_loop(go) == ["1", "again"]
    assert report.lines[-1] == "Successfully installed sk-app-1.0 sk-dep-1.0"


def test_second_install_is_satisfied_and_the_cache_serves_a_new_sandbox(
        index: package_index.Index, tmp_path: Path) -> None:
    inst, report = installs(index, tmp_path), Lines()

    async def go(session: AsyncSession) -> None:
        await inst.pip(session, PipRequest(("sk-demo==1.0",)), report)
        await inst.pip(session, PipRequest(("sk-demo",)), report)

    in_loop(go)
    assert report.lines[-1] == "Requirement already satisfied: sk-demo (1.0)"
    fetched = index.fetched("sk_demo-1.0-py3-none-any.whl")
    in_loop(go)  # a new sandbox: fetched from the host's cache, not the index
    assert index.fetched("sk_demo-1.0-py3-none-any.whl") == fetched
    assert any(line.startswith("Using cached sk_demo-1.0") for line in report.lines)


def test_upgrade_replaces_and_says_the_interpreter_keeps_the_old(
        index: package_index.Index, tmp_path: Path) -> None:
    inst, report = installs(index, tmp_path), Lines()

    async def go(session: AsyncSession) -> str:
        await inst.pip(session, PipRequest(("sk-demo==1.0",)), report)
        await inst.pip(session, PipRequest(("sk-demo",), upgrade=True), report)
        return await py(session, "import sk_demo; print(sk_demo.X)")

    assert in_loop(go) == "two"
    assert report.lines[-1].startswith("Note: this replaces sk-demo 1.0")


REFUSALS: list[tuple[tuple[str, ...], dict[str, Any], str, str]] = [
    (("sk-app",), {"pip": ToolPolicy("pip", deny=(Rule.parse("sk-dep: not here"),))},
     "policy", "sk-dep (a dependency of sk-app) is not allowed by the policy: not here"),
    (("sk-demo",), {"pip": ToolPolicy("pip", allow=("numpy",))}, "policy",
     "not on the administrator's allow-list"),
    (("sk-big",), {"max_total": 100_000}, "size", "over the size cap of 97.7 KB"),
    (("sk-nothing",), {}, "not_found", "sk-nothing was not found on the package index"),
    (("sk-win",), {}, "no_wheel", "no wheel for the sandbox's platform"),
    (("anything",), {"pip_index_url": "http://127.0.0.1:9/simple"}, "unreachable",
     "the package index http://127.0.0.1:9/simple cannot be reached from the host"),
]


def test_refusals_are_one_line(index: package_index.Index, tmp_path: Path) -> None:
    async def go(session: AsyncSession) -> list[InstallError]:
        errors = []
        for request, kw, _, _ in REFUSALS:
            inst = Installs(InstallPolicy(**{"pip_index_url": index.simple, **kw}), tmp_path)
            with pytest.raises(InstallError) as err:
                await inst.pip(session, PipRequest(request), Lines())
            errors.append(err.value)
        return errors

    for err, (_, _, kind, text) in zip(in_loop(go), REFUSALS, strict=True):
        assert err.kind == kind and text in str(err) and "\n" not in str(err), str(err)
    assert (tmp_path / "wheels").exists() is False  # nothing refused was fetched


def test_npm_install_then_require(index: package_index.Index, tmp_path: Path) -> None:
    inst, report = installs(index, tmp_path), Lines()

    async def go(session: AsyncSession) -> str:
        await inst.npm(session, {"sk-odd": "latest"}, report)
        out = await session.execute_command(["node", "-e", "console.log(require('sk-odd')(3))"])
        return out.stdout.strip() or out.stderr

    assert in_loop(go) == "true"
    assert report.lines[-1] == "added sk-odd@1.0.0 (1 dependencies)"


def test_installer_refuses_a_staged_file_that_does_not_match(tmp_path: Path) -> None:
    async def go(session: AsyncSession) -> tuple[int, str, str]:
        await session.files.stage_from("x-1.0-py3-none-any.whl", [b"not a wheel"], 11)
        bad = await run_installer(session, "pip", {"x-1.0-py3-none-any.whl": "sha256:" +
                                                   "0" * 64})
        try:
            await session.files.stage_from("../escape", [b"x"], 1)
        except Exception as exc:  # noqa: BLE001 - the refusal is what is checked
            return bad.exit_code, bad.stderr, str(exc)
        return bad.exit_code, bad.stderr, "accepted"

    code, stderr, escape = in_loop(go)
    assert code == 1 and "does not match the digest the host sent" in stderr
    assert "is not a staged file name" in escape


def test_inventory_lists_the_interpreter_packages(tmp_path: Path) -> None:
    inst = Installs(InstallPolicy(), tmp_path)
    found = in_loop(inst.installed)
    assert "pip" in found and "ipykernel" in found  # the host venv stands in for the image
    # canonical names, from NAME-VERSION.dist-info
    assert found["charset-normalizer"] == importlib.metadata.version("charset-normalizer")
