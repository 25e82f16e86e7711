"""Python wheels for the sandbox, resolved and fetched on the host (the sandbox has no network).

uv resolves for the sandbox's interpreter and platform (CPython 3.11.2, manylinux x86_64,
glibc 2.36), which pip cannot do: pip evaluates dependency markers for the host's Python.
pip then downloads the exact wheels, checked against the hashes the index publishes, and each
is pinned by the sha256 of the file fetched. The image installs them offline with
``--require-hashes --no-deps``.

Both tools run with the host's own configuration off (``PIP_CONFIG_FILE=/dev/null``,
``--isolated``, no ``PIP_*``/``UV_*`` variables, ``uv --no-config``): constraint files,
find-links directories and extra indexes describe the host's environment (here a torch cap
and machine-local wheel mirrors), and would make the image's packages depend on the machine
that built it. The index is ``$SANDBOX_PIP_INDEX_URL``, else PyPI.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from ..errors import BuildError
from .packages import Pin

PYTHON_VERSION = "3.11.2"
GLIBC_MINOR = 36  # Debian bookworm's glibc 2.36
UV_PLATFORM = f"x86_64-manylinux_2_{GLIBC_MINOR}"
PYPI = "https://pypi.org/simple"
#: the tree uv draws around its errors (x, corners, arrows)
_DRAWING = re.compile("^[\\s\u00d7\u2570\u2500\u25b6\u2502]+")
_PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)((?:\s+--hash=\S+)*)\s*$")


def pip_platform_args() -> list[str]:
    """pip's target options: binary wheels a CPython 3.11 on glibc 2.36 x86_64 can install."""
    platforms = [f"manylinux_2_{minor}_x86_64" for minor in range(GLIBC_MINOR, 16, -1)]
    platforms += ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp",
            "--abi", "cp311", "--abi", "abi3", "--abi", "none"]
    for p in platforms:
        args += ["--platform", p]
    return args


def index_url(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get("SANDBOX_PIP_INDEX_URL") or PYPI


def clean_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment for pip and uv: the host's PIP_*/UV_* settings and config files off."""
    env = {k: v for k, v in environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", UV_NO_CONFIG="1")
    return env


def uv_binary() -> str:
    try:
        import uv

        return str(uv.find_uv_bin())
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return found
    raise BuildError("uv is needed to resolve packages for the sandbox's platform; install it "
                     "with 'pip install uv'")


def one_line(stderr: str) -> str:
    """A tool's error as one line: its error lines, joined, without uv's tree drawing."""
    if "DO NOT MATCH THE HASHES" in stderr:
        return _hash_mismatch(stderr)
    lines = [_DRAWING.sub("", ln).strip() for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith(("WARNING", "hint:", "Resolved"))]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "cause:", "caused by:"))]
    parts = [re.sub(r"^(error|cause|caused by):\s*", "", ln, flags=re.I).rstrip(":")
             for ln in (errors or lines)[-3:]]
    return " ".join(": ".join(parts).split())[:400] or "no error output"


def _hash_mismatch(stderr: str) -> str:
    """pip's hash-mismatch report as one line naming each file and the digests."""
    found = re.findall(r"^\s*(\S+==\S+) from .*?\n\s*Expected (\w+) (\w+)(?:\n\s*or \w+)*"
                       r"\n\s*Got\s+(\w+)", stderr, re.M)
    if not found:
        return "a downloaded file does not match the hashes given"
    name, algo, want, got = found[0]
    more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
    return (f"{name} does not match the hash given ({algo} {want[:12]}...; the index's file "
            f"is {got[:12]}...){more}")


def run_tool(what: str, argv: Sequence[str], cwd: Path | None = None) -> str:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, env=clean_env(),
                              cwd=cwd, check=False, timeout=1800)
    except FileNotFoundError:
        raise BuildError(f"cannot {what}: {argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise BuildError(f"cannot {what}: {Path(argv[0]).name} took longer than 30 min") from None
    if proc.returncode != 0:
        raise BuildError(f"cannot {what}: {one_line(proc.stderr)}")
    return proc.stdout


def parse_pins(text: str) -> list[Pin]:
    """``name==version --hash=...`` lines (continuations joined); other lines are ignored."""
    pins = []
    for line in re.sub(r"\\\n", " ", text).splitlines():
        m = _PIN_LINE.match(line.split(" #")[0].strip())
        if m:
            hashes = tuple(h.removeprefix("--hash=") for h in m.group(3).split())
            pins.append(Pin(canonicalize_name(m.group(1)), m.group(2), hashes))
    return pins


def resolve(requirements: Path, *, constraints: Sequence[Pin] = (),
            preferences: Path | None = None, upgrade: bool = False) -> list[Pin]:
    """Every distribution the requirements need on the sandbox, with the index's hashes."""
    with tempfile.TemporaryDirectory(prefix="sandbox-resolve-") as tmp:
        out = Path(tmp) / "resolved.txt"
        if preferences is not None and preferences.is_file() and not upgrade:
            shutil.copyfile(preferences, out)  # uv keeps the versions already in its output
        argv = [uv_binary(), "pip", "compile", "--quiet", "--no-config", "--system-certs",
                "--python-version", PYTHON_VERSION, "--python-platform", UV_PLATFORM,
                "--only-binary", ":all:", "--generate-hashes", "--no-header", "--no-annotate",
                "--index-url", index_url(), "-o", str(out), str(requirements)]
        if constraints:
            cfile = Path(tmp) / "constraints.txt"
            cfile.write_text("".join(f"{p.name}=={p.version}\n" for p in constraints))
            argv += ["--constraint", str(cfile)]
        if upgrade:
            argv.append("--upgrade")
        run_tool(f"resolve {requirements.name} for the sandbox", argv)
        return parse_pins(out.read_text())


def download(pins: Sequence[Pin], dest: Path) -> dict[str, Path]:
    """Fetch each pin's wheel for the sandbox into dest (hash-checked); name -> file."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", prefix="sandbox-pins-") as req:
        req.write("".join(p.line() + "\n" for p in pins))
        req.flush()
        run_tool("download wheels for the sandbox", [
            sys.executable, "-m", "pip", "download", "--isolated", "--quiet", "--no-deps",
            "--require-hashes", "--index-url", index_url(), *pip_platform_args(),
            "-d", str(dest), "-r", req.name])
    return wheels_in(dest, pins)


def wheels_in(folder: Path, pins: Sequence[Pin]) -> dict[str, Path]:
    """The wheel file of each pin in folder; BuildError naming any that is missing."""
    found: dict[tuple[str, str], Path] = {}
    for path in folder.glob("*.whl"):
        name, version, _, _ = parse_wheel_filename(path.name)
        found[(canonicalize_name(name), str(version))] = path
    files: dict[str, Path] = {}
    missing: list[str] = []
    for p in pins:
        match = found.get((p.name, _version(p.version)))
        if match is None:
            missing.append(f"{p.name}=={p.version}")
        else:
            files[p.name] = match
    if missing:
        raise BuildError(f"no wheel for the sandbox's platform was fetched for "
                         f"{', '.join(missing[:5])}")
    return files


def _version(text: str) -> str:
    try:
        return str(Version(text))
    except InvalidVersion:
        return text


def canonical(name: str) -> str:
    return str(canonicalize_name(name))


def same_version(a: str, b: str) -> bool:
    return _version(a) == _version(b)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def pin_files(pins: Sequence[Pin], files: Mapping[str, Path]) -> list[Pin]:
    """Each pin narrowed to the sha256 of the wheel that was fetched for it."""
    out = []
    for p in pins:
        digest = sha256_of(files[p.name])
        if p.hashes and digest not in p.hashes:
            raise BuildError(f"{files[p.name].name} does not match the hashes the index gave "
                             f"for {p.name}=={p.version}")
        out.append(Pin(p.name, p.version, (digest,)))
    return out
