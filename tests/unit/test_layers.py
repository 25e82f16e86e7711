"""The dependency rules of architecture.md, read from every module's AST.

- no module imports docker-py (or requests, urllib3): the Engine API client is the
  backend's own (sandbox/docker_api.py); only the Docker backend's modules
  (sandbox/docker_*.py, engine_facts.py) use http.client, only the backend factory
  (sandbox/engines.py) imports them from above, and no
  module above them speaks the Engine API's vocabulary: a Kubernetes backend (docs/engines.md)
  would need no change above the Backend interface;
- agent/ imports the standard library and itself only (the Python worker's modules may
  also use IPython, traitlets and matplotlib), never sandbox_kernel.sandbox or
  sandbox_kernel.kernel;
- sandbox/ never imports Jupyter (ipykernel, traitlets, ipywidgets, jupyter_client) or
  sandbox_kernel.kernel.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import sandbox_kernel

PACKAGE = Path(sandbox_kernel.__file__).resolve().parent
STDLIB = set(sys.stdlib_module_names) | {"__future__"}
DOCKER_ONLY = "sandbox_kernel.sandbox.docker_backend"
FACTORY = "sandbox_kernel.sandbox.engines"
#: Engine API words that mean code above the backend knows it talks to Docker.
DOCKER_VOCABULARY = ("HostConfig", "NanoCpus", "PidsLimit", "SecurityOpt", "attach_socket",
                     "exec_create", "inspect_container", "/containers/", "docker.sock",
                     "libpod", "DOCKER_HOST", "DOCKER_CERT_PATH", "REQUESTS_CA_BUNDLE")
WORKER_EXTRAS = {"IPython", "traitlets", "matplotlib", "comm"}
#: The installer runs the image's pip in its own process (as the installer uid).
INSTALLER_EXTRAS = {"sandbox_kernel.agent.installer": {"pip"}}
WORKER_MODULES = {f"sandbox_kernel.agent.{m}" for m in ("python_worker", "pyshell", "pycompile",
                                                          "pymagics", "pystreams", "pylink",
                                                          "pycomm")}
JUPYTER = {"ipykernel", "traitlets", "ipywidgets", "jupyter_client"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(source: str, module: str, is_package: bool = False) -> Iterator[tuple[str, int]]:
    """Absolute names imported anywhere in a module (function bodies included)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                keep = len(parts) - (node.level - 1)
                if keep <= 0:
                    raise AssertionError(f"{module}:{node.lineno}: relative import escapes")
                base = ".".join(parts[:keep])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target, node.lineno
            for alias in node.names:
                if alias.name != "*":
                    yield f"{target}.{alias.name}", node.lineno


def all_modules() -> list[tuple[str, Path, list[tuple[str, int]]]]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        found = list(imports_of(path.read_text(encoding="utf-8"), name,
                                path.name == "__init__.py"))
        out.append((name, path, found))
    return out


MODULES = all_modules()


def top(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def test_scanner_sees_the_package() -> None:
    names = {m for m, _, _ in MODULES}
    assert {"sandbox_kernel.agent.agent", "sandbox_kernel.sandbox.session",
            DOCKER_ONLY, FACTORY, "sandbox_kernel.cli"} <= names
    assert len(names) >= 20
    # positive control: the docker backend's modules really do speak HTTP
    backend_imports = {i for m, _, imps in MODULES if docker_family(m) for i, _ in imps}
    assert "http.client" in backend_imports


def docker_family(name: str) -> bool:
    """The Docker backend and its helpers."""
    short = name.rpartition(".")[2]
    return under(name, "sandbox_kernel.sandbox") and (short.startswith("docker_") or
                                                        short == "engine_facts")


def test_no_module_imports_docker_py_and_only_the_backend_speaks_http() -> None:
    bad = [f"{m}:{line} imports {imp}" for m, _, imps in MODULES
           for imp, line in imps if top(imp) in ("docker", "requests", "urllib3")
           or (top(imp) == "http" and not docker_family(m))]
    assert not bad, "\n".join(bad)


#: Building images is Docker's business by nature (docker build): these may use the CLI.
IMAGE_BUILDS = {"sandbox_kernel.sandbox.derived", "sandbox_kernel.sandbox.image"}


def test_only_the_factory_names_the_docker_backend() -> None:
    family = {m for m, _, _ in MODULES if docker_family(m)}
    assert {DOCKER_ONLY, "sandbox_kernel.sandbox.engine_facts"} <= family
    bad = [f"{m}:{line} imports {imp}" for m, _, imps in MODULES
           if not docker_family(m) and m != FACTORY for imp, line in imps
           if any(under(imp, f) for f in family)
           and not (m in IMAGE_BUILDS and under(imp, "sandbox_kernel.sandbox.docker_cli"))]
    assert not bad, "\n".join(bad)


def test_nothing_above_the_backend_speaks_the_engine_api() -> None:
    bad = []
    for m, path, _ in MODULES:
        if docker_family(m) or m == FACTORY:
            continue
        text = path.read_text(encoding="utf-8")
        bad += [f"{m} mentions {word!r}" for word in DOCKER_VOCABULARY if word in text]
        tree = ast.parse(text)
        bad += [f"{m}:{node.lineno} uses .{node.attr} (a Docker client)"
                for node in ast.walk(tree)
                if isinstance(node, ast.Attribute) and node.attr in ("api", "client")]
    assert not bad, "\n".join(bad)


def test_agent_is_standard_library_only() -> None:
    bad = []
    for m, _, imps in MODULES:
        if not under(m, "sandbox_kernel.agent"):
            continue
        extras = WORKER_EXTRAS if m in WORKER_MODULES else INSTALLER_EXTRAS.get(m, set())
        for imp, line in imps:
            t = top(imp)
            if t == "sandbox_kernel":
                if not under(imp, "sandbox_kernel.agent"):
                    bad.append(f"{m}:{line} imports host-side {imp}")
            elif t not in STDLIB and t not in extras:
                bad.append(f"{m}:{line} imports non-stdlib {imp}")
    assert not bad, "\n".join(bad)


def test_sandbox_layer_is_jupyter_free() -> None:
    bad = [f"{m}:{line} imports {imp}" for m, _, imps in MODULES
           if under(m, "sandbox_kernel.sandbox") for imp, line in imps
           if top(imp) in JUPYTER or under(imp, "sandbox_kernel.kernel")]
    assert not bad, "\n".join(bad)


def test_kernel_layer_may_be_absent_or_empty() -> None:
    kernel = PACKAGE / "kernel"
    kernel_modules = [m for m, _, _ in MODULES if under(m, "sandbox_kernel.kernel")]
    if not kernel.exists():
        assert kernel_modules == []
    else:
        assert len(kernel_modules) == len(list(kernel.rglob("*.py")))


# ----- the checker itself must be able to catch violations -------------------------------------
def test_the_vocabulary_check_can_fail() -> None:
    tree = ast.parse("def f(b):\n    return b.api.inspect_container('x')\n")
    assert any(isinstance(n, ast.Attribute) and n.attr == "api" for n in ast.walk(tree))
    assert docker_family("sandbox_kernel.sandbox.docker_connect")
    assert not docker_family("sandbox_kernel.sandbox.session")
    assert not docker_family("sandbox_kernel.kernel.docker_things")


@pytest.mark.parametrize(("source", "module", "expected"), [
    ("from ..kernel import cells", "sandbox_kernel.sandbox.fake", "sandbox_kernel.kernel.cells"),
    ("from .. import kernel", "sandbox_kernel.sandbox.fake", "sandbox_kernel.kernel"),
    ("from ..sandbox.session import Session", "sandbox_kernel.agent.fake",
     "sandbox_kernel.sandbox.session"),
    ("def f():\n    import docker.errors\n", "sandbox_kernel.sandbox.fake", "docker.errors"),
    ("from . import protocol", "sandbox_kernel.agent.fake", "sandbox_kernel.agent.protocol"),
    ("import ipykernel.kernelbase as kb", "sandbox_kernel.sandbox.fake", "ipykernel.kernelbase"),
])
def test_resolver(source: str, module: str, expected: str) -> None:
    assert expected in {name for name, _ in imports_of(source, module)}


def test_resolver_for_packages() -> None:
    found = {n for n, _ in imports_of("from .spec import Limits", "sandbox_kernel.sandbox",
                                      is_package=True)}
    assert "sandbox_kernel.sandbox.spec" in found
