"""The installer, run by the agent as the installer uid: python -I -S installer.py TOOL ROOT ...

    inventory ROOT              the Python distributions of the image and of ROOT, as JSON
    pip ROOT NAME=DIGEST ...    install staged wheels into ROOT/python (pip, offline)
    npm ROOT NAME=DIGEST ...    install the staged npm project into ROOT/node (npm, offline)

Standard library only, started without site, so no installed package's code (a .pth file)
runs here. Every staged file is checked against its digest before use; the staging folder
is the installer's own (mode 0700), so what was checked is what is installed.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

STAGING = ".staging"
NPM_FLAGS = ("--offline", "--ignore-scripts", "--no-audit", "--no-fund", "--no-save",
             "--update-notifier=false", "--loglevel=error", "--logs-max=0")


def fail(text: str, code: int = 1) -> int:
    print(text, file=sys.stderr)
    return code


def site_packages() -> str:
    """The interpreter's own site-packages (a venv's when it is one), found without site."""
    base = os.path.dirname(os.path.dirname(sys.executable))
    lib = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    if os.path.isfile(os.path.join(base, "pyvenv.cfg")):
        return os.path.join(base, "lib", lib, "site-packages")
    import sysconfig

    return sysconfig.get_path("purelib")


def digest_of(fd: int, algo: str) -> str:
    h = hashlib.new(algo)
    while block := os.read(fd, 1 << 20):
        h.update(block)
    return h.hexdigest()


def checked(root: str, items: list[str]) -> dict[str, str]:
    """NAME=ALGO:HEX arguments, each staged file checked: name -> path in the staging folder."""
    out: dict[str, str] = {}
    staging = os.path.join(root, STAGING)
    for item in items:
        name, _, digest = item.partition("=")
        algo, _, want = digest.partition(":")
        path = os.path.join(staging, name)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            got = digest_of(fd, algo)
        finally:
            os.close(fd)
        if got != want:
            raise ValueError(f"{name} does not match the digest the host sent ({algo} "
                             f"{want[:12]}..., staged {got[:12]}...); nothing was installed")
        out[name] = path
    return out


def dists(path: str) -> dict[str, str]:
    """name -> version of the distributions in a directory, from their .dist-info names
    (NAME-VERSION.dist-info, as pip writes them): no metadata file needs reading."""
    found: dict[str, str] = {}
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return found
    for entry in names:
        stem = entry.removesuffix(".dist-info")
        if stem != entry and stem.count("-") == 1:
            name, version = stem.split("-")
            found.setdefault(name, version)
    return found


def inventory(root: str) -> int:
    print(json.dumps({"image": dists(site_packages()),
                      "session": dists(os.path.join(root, "python"))}))
    return 0


def pip(root: str, files: dict[str, str]) -> int:
    wheels = [p for n, p in files.items() if n.endswith(".whl")]
    if not wheels:
        return fail("no wheels were staged")
    sys.path.append(site_packages())
    from pip._internal.cli.main import main

    args = ["install", "--no-index", "--no-deps", "--upgrade", "--quiet",
            "--target", os.path.join(root, "python"), "--no-warn-script-location",
            "--disable-pip-version-check", "--no-cache-dir", "--progress-bar", "off", *wheels]
    code = int(main(args) or 0)
    return code


def npm(root: str, files: dict[str, str]) -> int:
    project = os.path.join(root, "node")
    cache = os.path.join(root, ".npm-cache")
    for name, path in files.items():
        if name.endswith(".tgz"):  # by its sha512: where npm's cache looks it up
            hexd = name.removesuffix(".tgz")
            blob = os.path.join(cache, "_cacache", "content-v2", "sha512", hexd[:2],
                                hexd[2:4], hexd[4:])
            os.makedirs(os.path.dirname(blob), exist_ok=True)
            shutil.move(path, blob)
        elif name in ("package.json", "package-lock.json"):
            shutil.move(path, os.path.join(project, name))
    npm_cli = shutil.which("npm")
    if npm_cli is None:
        return fail("npm is not installed in this image")
    none = os.path.join(root, STAGING, "no-npmrc")  # never there: the image's npmrc only
    argv = [npm_cli, "install", *NPM_FLAGS, "--cache", cache, "--userconfig", none + "-user",
            "--globalconfig", none + "-global"]
    return subprocess.run(argv, cwd=project, stdin=subprocess.DEVNULL, check=False).returncode


def clean(root: str) -> None:
    """The staging folder is emptied after every run, whatever happened."""
    staging = os.path.join(root, STAGING)
    for name in os.listdir(staging):
        path = os.path.join(staging, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            os.unlink(path)


def main(argv: list[str]) -> int:
    os.umask(0o022)
    if len(argv) < 2:
        return fail("usage: installer.py inventory|pip|npm ROOT [NAME=DIGEST ...]", 2)
    tool, root = argv[0], argv[1]
    if tool == "inventory":
        return inventory(root)
    try:
        files = checked(root, argv[2:])
        return pip(root, files) if tool == "pip" else npm(root, files)
    except (OSError, ValueError) as exc:
        return fail(str(exc))
    finally:
        clean(root)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
