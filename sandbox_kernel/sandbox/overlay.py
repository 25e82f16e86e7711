"""Run by the image's Python inside a derived image's build stage (standard library only).

    python -S overlay.py LOCK DEST SITE_PACKAGES

Copies every file pip installed into SITE_PACKAGES for LOCK's distributions (as their RECORD
lists them), plus their bytecode, into DEST under the same absolute paths; the final stage
copies DEST onto the image, so it carries the installed packages and not the wheels they came
from. Run with -S: no code of the installed packages (a .pth file) runs during the build.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import py_compile
import re
import shutil
import sys
from pathlib import Path

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked_names(lock: Path) -> set[str]:
    return {canonical(m.group(1)) for line in lock.read_text().splitlines()
            if (m := _PIN.match(line.strip()))}


def installed_files(names: set[str], site: str) -> list[Path]:
    """Absolute paths of the files of these distributions, bytecode included."""
    found: set[str] = set()
    files: list[Path] = []
    for dist in importlib.metadata.distributions(path=[site]):
        name = canonical(dist.metadata["Name"] or "")
        if name not in names or name in found:
            continue
        found.add(name)
        for entry in dist.files or []:
            path = Path(os.path.normpath(str(dist.locate_file(entry))))
            if path.suffix == ".pyc" or not path.is_file():
                continue
            files.append(path)
            if path.suffix == ".py":
                files.extend(_compiled(path))
    missing = names - found
    if missing:
        raise SystemExit(f"overlay: not installed: {', '.join(sorted(missing))}")
    return files


def _compiled(source: Path) -> list[Path]:
    target = Path(importlib.util.cache_from_source(str(source)))
    try:
        py_compile.compile(str(source), cfile=str(target), doraise=True)
    except (py_compile.PyCompileError, OSError):
        return []  # a file the interpreter cannot compile is left to fail at import, as with pip
    return [target]


def main(argv: list[str]) -> int:
    lock, dest, site = Path(argv[0]), Path(argv[1]), argv[2]
    files = installed_files(locked_names(lock), site)
    for path in files:
        target = dest / path.relative_to("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target, follow_symlinks=False)
    print(f"overlay: {len(files)} files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
