"""A package index and an npm registry on 127.0.0.1 for live-install tests and benchmarks.

The files are real releases, fetched once by the host into a per-user fixture directory
($SANDBOX_TEST_PACKAGES, else ~/.cache/sandbox-kernel/test-packages) and served from there:
a PEP 503 simple index under /simple/ and npm packuments and tarballs under /npm/. Nothing
in a test then leaves this machine (the sandbox never connects anywhere at all).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: Not in the sandbox image: a pure-Python wheel, one with a compiled extension, a third
#: for policy tests.
WHEELS = ("tabulate==0.10.0", "msgpack==1.2.4", "colorama==0.4.6")
NPM = ("is-odd@3.0.1", "is-number@6.0.0")


def fixture_dir() -> Path:
    base = os.environ.get("SANDBOX_TEST_PACKAGES") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
        "sandbox-kernel", "test-packages")
    return Path(base)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def ensure_fixtures() -> Path:
    """Fetch the fixture files once (the host's pip and npm, for the sandbox's platform)."""
    root = fixture_dir()
    wheels, npm = root / "wheels", root / "npm"
    wheels.mkdir(parents=True, exist_ok=True)
    npm.mkdir(parents=True, exist_ok=True)
    have = {_canonical(p.name.split("-")[0]) + "==" + p.name.split("-")[1]
            for p in wheels.glob("*.whl")}
    missing = [w for w in WHEELS if _canonical(w.split("==")[0]) + "==" + w.split("==")[1]
               not in have]
    if missing:
        from sandbox_kernel.sandbox.wheels import clean_env, pip_platform_args

        subprocess.run([sys.executable, "-m", "pip", "download", "--isolated", "--quiet",
                        "--no-deps", *pip_platform_args(), "-d", str(wheels), *missing],
                       check=True, env=clean_env(), timeout=600)
    for spec in NPM:
        name, version = spec.rsplit("@", 1)
        if not (npm / f"{name}-{version}.tgz").is_file():
            subprocess.run(["npm", "pack", spec, "--silent", "--ignore-scripts"], cwd=npm,
                           check=True, capture_output=True, timeout=600)
    return root


@dataclass
class Index:
    """The running servers' addresses and what they were asked for."""

    url: str
    requests: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)

    @property
    def simple(self) -> str:
        return f"{self.url}/simple"

    @property
    def npm(self) -> str:
        return f"{self.url}/npm/"

    def fetched(self, suffix: str, agent: str = "") -> int:
        """Requests for paths ending in suffix (by a client whose User-Agent starts so)."""
        return sum(1 for r, a in zip(self.requests, self.agents, strict=True)
                   if r.endswith(suffix) and a.startswith(agent))


def _packument(base: str, tarballs: list[Path], name: str) -> dict[str, object]:
    versions: dict[str, object] = {}
    for path in tarballs:
        with tarfile.open(path) as tar:
            member = tar.extractfile("package/package.json")
            meta = json.loads(member.read()) if member else {}
        if meta.get("name") != name:
            continue
        data = path.read_bytes()
        integrity = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
        meta["dist"] = {"tarball": f"{base}/npm/{name}/-/{path.name}", "integrity": integrity,
                        "shasum": hashlib.sha1(data).hexdigest()}
        versions[str(meta["version"])] = meta
    latest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")), default="")
    return {"name": name, "dist-tags": {"latest": latest}, "versions": versions}


def _metadata(wheel: Path) -> bytes:
    """The wheel's METADATA (served as FILE.metadata, PEP 658), so resolvers need not
    download the wheel to read it, as with PyPI."""
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        return z.read(name)


def _file_entry(base: str, wheel: Path) -> dict[str, object]:
    """A PEP 691 file entry, with PEP 700's size and PEP 714's core-metadata."""
    return {"filename": wheel.name, "url": f"{base}/files/{wheel.name}",
            "hashes": {"sha256": hashlib.sha256(wheel.read_bytes()).hexdigest()},
            "size": wheel.stat().st_size,
            "core-metadata": {"sha256": hashlib.sha256(_metadata(wheel)).hexdigest()}}


def _simple(index: Index, wheels: list[Path], name: str, accept: str) -> tuple[bytes, str]:
    files = [w for w in wheels if _canonical(w.name.split("-")[0]) == name]
    if not files:
        return b"", ""
    if "application/vnd.pypi.simple.v1+json" in accept:
        body = {"meta": {"api-version": "1.1"}, "name": name,
                "files": [_file_entry(index.url, w) for w in files]}
        return json.dumps(body).encode(), "application/vnd.pypi.simple.v1+json"
    links = "".join(f'<a href="{index.url}/files/{html.escape(w.name)}#sha256='
                    f'{hashlib.sha256(w.read_bytes()).hexdigest()}">{html.escape(w.name)}</a>\n'
                    for w in files)
    return f"<html><body>{links}</body></html>".encode(), "text/html"


def _route(root: Path, index: Index, path: str, accept: str) -> tuple[bytes, str]:
    """The body and type of a GET (an empty type: 404)."""
    parts = [p for p in path.split("?", maxsplit=1)[0].split("/") if p]
    if parts[:1] == ["simple"] and len(parts) == 2:
        return _simple(index, sorted((root / "wheels").glob("*.whl")), parts[1], accept)
    if parts[:1] == ["files"] and len(parts) == 2 and (root / "wheels" / parts[1]).is_file():
        return (root / "wheels" / parts[1]).read_bytes(), "application/zip"
    if parts[:1] == ["files"] and len(parts) == 2 and parts[1].endswith(".metadata") and (
            root / "wheels" / parts[1].removesuffix(".metadata")).is_file():
        return _metadata(root / "wheels" / parts[1].removesuffix(".metadata")), "text/plain"
    if parts[:1] == ["npm"] and len(parts) == 2:
        doc = _packument(index.url, sorted((root / "npm").glob("*.tgz")), parts[1])
        return (json.dumps(doc).encode(), "application/json") if doc["versions"] else (b"", "")
    if parts[:1] == ["npm"] and len(parts) == 4 and (root / "npm" / parts[3]).is_file():
        return (root / "npm" / parts[3]).read_bytes(), "application/octet-stream"
    return b"", ""


def _handler(root: Path, index: Index) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _answer(self, head: bool) -> None:
            index.requests.append(self.path)
            index.agents.append(self.headers.get("User-Agent", ""))
            body, kind = _route(root, index, self.path, self.headers.get("Accept", ""))
            self.send_response(200 if kind else 404)
            self.send_header("Content-Type", kind or "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def do_GET(self) -> None:
            self._answer(head=False)

    return Handler


@contextmanager
def serve(root: Path | None = None) -> Iterator[Index]:
    """Both servers on one port of 127.0.0.1, for the duration: the fixture files, or those
    in root (wheels/*.whl, npm/*.tgz)."""
    root = root or ensure_fixtures()
    index = Index("")
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(root, index))
    index.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def make_wheel(folder: Path, name: str, version: str, files: dict[str, str],
               requires: tuple[str, ...] = (), tag: str = "py3-none-any") -> Path:
    """A minimal wheel (PEP 427) built here, for tests that must not fetch anything."""
    import zipfile

    dist = f"{name.replace('-', '_')}-{version}"
    meta = "".join([f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                    *(f"Requires-Dist: {r}\n" for r in requires)])
    contents = {**files, f"{dist}.dist-info/METADATA": meta,
                f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nGenerator: test\n"
                                           f"Root-Is-Purelib: true\nTag: {tag}\n"}
    record = "".join(f"{path},sha256={_b64(hashlib.sha256(text.encode()).digest())},"
                     f"{len(text.encode())}\n" for path, text in contents.items())
    contents[f"{dist}.dist-info/RECORD"] = record + f"{dist}.dist-info/RECORD,,\n"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:
        for member, text in contents.items():
            z.writestr(member, text)
    return path


def make_npm(folder: Path, name: str, version: str, index_js: str,
             deps: dict[str, str] | None = None) -> Path:
    """A minimal npm tarball (package/package.json, package/index.js) built here."""
    import io

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{version}.tgz"
    manifest = json.dumps({"name": name, "version": version, "main": "index.js",
                           "dependencies": deps or {}}).encode()
    with tarfile.open(path, "w:gz") as tar:
        for member, data in (("package/package.json", manifest),
                             ("package/index.js", index_js.encode())):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return path


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
