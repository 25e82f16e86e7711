"""Derived images: the sandbox image plus a project's packages, built with no registry.

Python wheels and npm tarballs are resolved and fetched on the host for the sandbox's
platform (wheels.py, npm.py), hash-checked, and installed offline in build stages whose
installed files alone are layered onto the image; Debian packages come from apt inside the
build, as in the sandbox image. No code of the added packages runs during the build (no npm
scripts, Python started without site), since build steps share the host's network. Staging
lives in the per-user build cache (image.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError, UsageError
from . import npm, wheels
from .docker_cli import docker, docker_build, image_labels
from .image import context_dir
from .lock import lock_text
from .packages import Pin, Requirements

VENV_PYTHON = "/opt/venv/bin/python"
SITE_PACKAGES = "/opt/venv/lib/python3.11/site-packages"
#: pip check without site: no installed package's code (a .pth file) runs in the build
#: (nor in the inventory of a base image below)
PIP_CHECK = (f"{VENV_PYTHON} -S -c \"import sys; sys.path.append('{SITE_PACKAGES}'); "
             "from pip._internal.cli.main import main; sys.exit(main(['check']))\"")
INVENTORY = (
    "import importlib.metadata as md, json\n"
    f"dists = md.distributions(path=['{SITE_PACKAGES}'])\n"
    "py = {d.metadata['Name']: d.version for d in dists}\n"
    "try:\n"
    f"    node = json.load(open('{npm.PROJECT}/package.json')).get('dependencies', {{}})\n"
    "except (OSError, ValueError):\n"
    "    node = {}\n"
    "print(json.dumps({'python': py, 'npm': node}))\n")


@dataclass(frozen=True)
class DerivedSpec:
    """What to add to which image, already validated (packages.py)."""

    tag: str
    base: str
    requirements: Requirements | None = None
    apt: tuple[str, ...] = ()
    npm: Mapping[str, str] = field(default_factory=dict)
    force: bool = False
    no_cache: bool = False


@dataclass(frozen=True)
class Plan:
    """What the generated Dockerfile installs on top of the base image (by id)."""

    base: str
    base_id: str
    tag: str
    python: tuple[Pin, ...] = ()
    apt: tuple[str, ...] = ()
    npm: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inventory:
    """What the base image already has: Python distributions and npm packages (exact)."""

    image_id: str
    python: Mapping[str, str]
    npm: Mapping[str, str]


def inventory(base: str) -> Inventory:
    labels = image_labels(base)
    if labels.get("sandbox_kernel.image") != "1":
        raise UsageError(f"{base} is not a sandbox-kernel image; derive from the sandbox "
                         "image (build it with 'sandbox-kernel build-image')")
    image_id = docker("image", "inspect", "-f", "{{.Id}}", base).strip()
    out = docker("run", "--rm", "--network", "none", "--read-only", "--cap-drop", "ALL",
                 "--security-opt", "no-new-privileges", "--entrypoint", VENV_PYTHON,
                 image_id, "-I", "-S", "-c", INVENTORY)
    try:
        data = json.loads(out.strip().splitlines()[-1])
        python = {wheels.canonical(k): str(v) for k, v in data["python"].items()}
        node = {str(k): str(v) for k, v in data["npm"].items()}
    except (ValueError, KeyError, IndexError, AttributeError):
        raise BuildError(f"cannot read the packages of {base}") from None
    return Inventory(image_id, python, node)


def python_pins(reqs: Requirements, ctx: Path, have: Inventory) -> list[Pin]:
    """Resolve and fetch the user's requirements: the pins the base image does not have."""
    (ctx / "wheels").mkdir(exist_ok=True)
    if reqs.hashed:
        return _given_pins(reqs, ctx, have)
    source = ctx / "requirements.in"
    source.write_text("".join(line.text() + "\n" for line in reqs.lines))
    resolved = _resolve(reqs, source, have)
    new = [p for p in resolved if p.name not in have.python]
    return wheels.pin_files(new, wheels.download(new, ctx / "wheels"))


def _resolve(reqs: Requirements, source: Path, have: Inventory) -> list[Pin]:
    """Resolution against the base image's packages, which keep their versions."""
    installed = [Pin(n, v) for n, v in have.python.items()]
    try:
        return wheels.resolve(source, constraints=installed)
    except BuildError as exc:
        raise BuildError(f"{reqs.path} cannot be installed beside the base image's packages: "
                         f"{str(exc).split(': ', 1)[-1]}") from None


def _given_pins(reqs: Requirements, ctx: Path, have: Inventory) -> list[Pin]:
    """A hashed file is used as given: complete, compatible, and downloaded by its hashes."""
    pins = [line.pin() for line in reqs.lines]
    for p in pins:
        if p.name in have.python and not wheels.same_version(have.python[p.name], p.version):
            raise UsageError(f"{reqs.path}: {p.name}=={p.version} conflicts with "
                             f"{p.name} {have.python[p.name]} in the base image")
    source = ctx / "requirements.in"
    source.write_text("".join(f"{p.name}=={p.version}\n" for p in pins))
    given = {p.name for p in pins} | set(have.python)
    missing = sorted(p.name for p in _resolve(reqs, source, have) if p.name not in given)
    if missing:
        raise UsageError(f"{reqs.path} has hashes but lacks dependencies: "
                         f"{', '.join(missing[:8])}; pin them too, or drop every --hash to let "
                         "the host pin what it downloads")
    new = [p for p in pins if p.name not in have.python]
    wheels.download(new, ctx / "wheels")  # pip checks each file against the hashes given
    return new


def dockerfile(plan: Plan) -> str:
    """The Dockerfile of a derived image (build context: wheels/, requirements.lock, npm/)."""
    out = [f"# Generated by sandbox-kernel build-image: {plan.base} plus the packages below.\n"]
    if plan.python:
        out.append(f"FROM {plan.base_id} AS python\nUSER root\n"
                   f"LABEL sandbox_kernel.stage_of={json.dumps(plan.tag)}\n"
                   "COPY wheels/ /tmp/wheels/\nCOPY requirements.lock overlay.py /tmp/\n"
                   f"RUN set -eu; {VENV_PYTHON} -m pip install --no-index --find-links "
                   "/tmp/wheels --require-hashes --no-deps --no-compile --quiet "
                   f"-r /tmp/requirements.lock; {VENV_PYTHON} -S /tmp/overlay.py "
                   f"/tmp/requirements.lock /overlay {SITE_PACKAGES}\n\n")
    if plan.npm:
        out.append(f"FROM {plan.base_id} AS node\nUSER root\n"
                   f"LABEL sandbox_kernel.stage_of={json.dumps(plan.tag)}\n"
                   "COPY npm/ /tmp/npm/\n"
                   f"RUN set -eu; mkdir -p {npm.PROJECT}; cp /tmp/npm/package.json "
                   f"/tmp/npm/package-lock.json {npm.PROJECT}/; cd {npm.PROJECT}; "
                   "npm ci --offline --cache /tmp/npm/cache --ignore-scripts --no-audit "
                   f"--no-fund --loglevel=error; chmod -R a+rX {npm.PROJECT}\n\n")
    out.append(f"FROM {plan.base_id}\nUSER root\n")
    if plan.apt:
        out.append("RUN set -eu; apt-get update; apt-get install -y --no-install-recommends "
                   f"{' '.join(plan.apt)}; rm -rf /var/lib/apt/lists/* /var/cache/apt/* "
                   "/usr/share/doc/* /usr/share/man/*; "
                   "rm -f /opt/sandbox-kernel/mplconfig/fontlist-*.json; "
                   "MPLCONFIGDIR=/opt/sandbox-kernel/mplconfig "
                   f"{VENV_PYTHON} -c 'import matplotlib.font_manager'; "
                   "chmod -R a+rX /opt/sandbox-kernel/mplconfig\n")
    if plan.python:
        out.append("COPY --from=python /overlay/ /\n")
    if plan.npm:
        out.append(f"COPY --from=node {npm.PROJECT}/ {npm.PROJECT}/\n"
                   f"ENV PATH=${{PATH}}:{npm.PROJECT}/node_modules/.bin\n")
    link = f"ln -sfn {npm.PROJECT}/node_modules /opt/node/lib/node; " if plan.npm else ""
    out.append(f"RUN set -eu; {link}{PIP_CHECK}; "
               "find / -xdev -perm /6000 -type f -exec chmod a-s {} +\n")
    added = [f"{p.name}=={p.version}" for p in plan.python] + list(plan.apt) + \
        [f"{n}@{v}" for n, v in plan.npm.items()]
    out.append(f"LABEL sandbox_kernel.derived_from={json.dumps(plan.base)} "
               f"sandbox_kernel.derived_base_id={json.dumps(plan.base_id)} "
               f"sandbox_kernel.derived_packages={json.dumps(' '.join(added))}\n"
               "USER 1000:1000\n")
    return "".join(out)


def stage(spec: DerivedSpec, ctx: Path, have: Inventory, say: Callable[[str], None]) -> Plan:
    """Fetch everything into ctx and write its Dockerfile; the plan it installs."""
    pins: list[Pin] = []
    if spec.requirements is not None:
        say(f"resolving and fetching {spec.requirements.path} for the sandbox's platform")
        pins = python_pins(spec.requirements, ctx, have)
        (ctx / "requirements.lock").write_text(lock_text(pins, Path(spec.requirements.path).name))
        shutil.copyfile(Path(__file__).with_name("overlay.py"), ctx / "overlay.py")
        say(f"    {len(pins)} new Python package(s)" + (": " if pins else "") +
            ", ".join(f"{p.name}=={p.version}" for p in pins[:10]))
    versions: dict[str, str] = {}
    if spec.npm:
        say(f"resolving and fetching npm packages: {', '.join(spec.npm)}")
        versions = npm.fetch(spec.npm, ctx / "npm", keep=have.npm)
        say("    " + ", ".join(f"{n}@{v}" for n, v in versions.items()))
    plan = Plan(spec.base, have.image_id, spec.tag, tuple(pins), spec.apt, versions)
    (ctx / "Dockerfile").write_text(dockerfile(plan))
    return plan


def content_hash(ctx: Path) -> str:
    h = hashlib.sha256()
    for name in ("Dockerfile", "requirements.lock", "npm/package-lock.json"):
        if (ctx / name).is_file():
            h.update(name.encode() + b"\0" + (ctx / name).read_bytes())
    return h.hexdigest()[:16]


def build(spec: DerivedSpec, say: Callable[[str], None] = print) -> bool:
    """Build spec.tag; False if it was already up to date."""
    if spec.tag == spec.base:
        raise UsageError(f"--tag {spec.tag} is the image it derives from; give a new tag")
    say(f"==> inspecting {spec.base}")
    have = inventory(spec.base)
    ctx = context_dir(spec.tag)
    ctx.parent.mkdir(parents=True, exist_ok=True)
    with open(ctx.with_name(ctx.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build of a tag at a time
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir()
        try:
            return _stage_and_build(spec, ctx, have, say)
        except BaseException:
            shutil.rmtree(ctx, ignore_errors=True)  # nothing half-staged stays in the cache
            raise


def _stage_and_build(spec: DerivedSpec, ctx: Path, have: Inventory,
                     say: Callable[[str], None]) -> bool:
    stage(spec, ctx, have, say)
    digest = content_hash(ctx)
    if not spec.force and image_labels(spec.tag, missing_ok=True).get(
            "sandbox_kernel.derived_hash") == digest:
        say(f"    {spec.tag} is up to date; use --force to rebuild")
        return False
    say(f"==> building {spec.tag}")
    docker_build(ctx, spec.tag, {"sandbox_kernel.derived_hash": digest},
                 no_cache=spec.no_cache)
    # The stages and the staged archives are not worth their disk once built; the lock,
    # package-lock.json and Dockerfile stay in the context for reference.
    docker("image", "prune", "-f", "--filter", "dangling=true",
           "--filter", f"label=sandbox_kernel.stage_of={spec.tag}")
    shutil.rmtree(ctx / "wheels", ignore_errors=True)
    shutil.rmtree(ctx / "npm" / "cache", ignore_errors=True)
    return True
