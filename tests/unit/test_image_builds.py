"""Image builds without Docker or a network: the target platform, the host-config isolation,
pins and the lock, staging paths, npm checks, the derived Dockerfile, CLI validation and
kernelspecs with an image."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from sandbox_kernel import cli, cli_images
from sandbox_kernel.errors import BuildError, SandboxError, UsageError
from sandbox_kernel.kernel.install import check_names, install
from sandbox_kernel.sandbox import derived, lock, npm, wheels
from sandbox_kernel.sandbox.docker_cli import failure
from sandbox_kernel.sandbox.image import build_cache, context_dir, docker_dir
from sandbox_kernel.sandbox.packages import Pin

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "docker" / "sandbox" / "requirements.lock"


def wheel(folder: Path, name: str, version: str, tag: str = "py3-none-any") -> Path:
    path = folder / f"{name}-{version}-{tag}.whl"
    with zipfile.ZipFile(path, "w") as z:  # the same bytes every time
        z.writestr(zipfile.ZipInfo(f"{name}/__init__.py", (2020, 1, 1, 0, 0, 0)),
                   f"__version__ = {version!r}\n")
    return path


# ----- the sandbox's platform and the host's configuration ------------------------------------
def test_pip_targets_cpython_311_on_every_manylinux_up_to_glibc_236() -> None:
    args = wheels.pip_platform_args()
    platforms = [args[i + 1] for i, a in enumerate(args) if a == "--platform"]
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert {f"manylinux_2_{m}_x86_64" for m in range(17, 37)} <= set(platforms)
    assert {"manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)
    assert not [p for p in platforms if "_2_37" in p or "aarch64" in p or "musl" in p]
    assert args[:3] == ["--only-binary=:all:", "--python-version", "3.11.2"]
    assert args[args.index("cp311") - 1:args.index("cp311") + 1] == ["--abi", "cp311"]
    assert wheels.UV_PLATFORM == "x86_64-manylinux_2_36"


def test_host_pip_and_uv_configuration_is_switched_off() -> None:
    env = wheels.clean_env({"PATH": "/bin", "PIP_CONSTRAINT": "/etc/c.txt",
                            "PIP_FIND_LINKS": "/opt/wheels", "PIP_INDEX_URL": "http://x",
                            "UV_INDEX_URL": "http://y", "UV_CONSTRAINT": "c", "HOME": "/h"})
    assert env == {"PATH": "/bin", "HOME": "/h", "PIP_CONFIG_FILE": "/dev/null",
                   "PIP_DISABLE_PIP_VERSION_CHECK": "1", "UV_NO_CONFIG": "1"}
    assert wheels.index_url({}) == "https://pypi.org/simple"
    assert wheels.index_url({"SANDBOX_PIP_INDEX_URL": "https://mirror/simple"}) == \
        "https://mirror/simple"


def test_the_host_constraint_file_does_not_reach_pip(tmp_path: Path) -> None:
    """Config files (global, user, $PIP_CONFIG_FILE) and PIP_* variables are all off."""
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nconstraint = /etc/xdg/pip/constraints.txt\n")
    env = wheels.clean_env({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                            "PIP_CONFIG_FILE": str(conf), "PIP_FIND_LINKS": "/opt/wheels"})
    out = subprocess.run([wheels.sys.executable, "-m", "pip", "--isolated", "config", "list"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert out == ""  # not even /etc/xdg/pip/pip.conf or /etc/pip.conf, where they exist


def test_tool_errors_become_one_line() -> None:
    uv = ("  \u00d7 No solution found when resolving dependencies:\n"
          "  \u2570\u2500\u25b6 Because nosuch was not found in the package registry and "
          "you require nosuch, we can conclude that your requirements are unsatisfiable.\n")
    assert wheels.one_line(uv) == ("No solution found when resolving dependencies: Because "
                                   "nosuch was not found in the package registry and you "
                                   "require nosuch, we can conclude that your requirements "
                                   "are unsatisfiable.")
    pip = ("Collecting six==1.17.0\nERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE "
           "REQUIREMENTS FILE. blah\n    six==1.17.0 from https://files/six.whl (from -r r "
           "(line 1)):\n        Expected sha256 0000000000000000\n"
           "             Got        4721f391ed90541f\n")
    assert wheels.one_line(pip) == ("six==1.17.0 does not match the hash given (sha256 "
                                    "000000000000...; the index's file is 4721f391ed90...)")
    assert wheels.one_line("WARNING: x\nERROR: No matching distribution found for a\n") == \
        "No matching distribution found for a"


# ----- pins and the lock --------------------------------------------------------------------
def test_parse_pins_reads_uv_output_and_the_lock() -> None:
    text = ("# header\nSix==1.17.0 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
            "tabulate==0.9.0 --hash=sha256:cc\nnot a pin\n")
    assert wheels.parse_pins(text) == [Pin("six", "1.17.0", ("sha256:aa", "sha256:bb")),
                                       Pin("tabulate", "0.9.0", ("sha256:cc",))]


def test_pin_files_narrows_to_the_fetched_file_and_checks_the_index_hashes(
        tmp_path: Path) -> None:
    path = wheel(tmp_path, "tiny", "1.0")
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    files = wheels.wheels_in(tmp_path, [Pin("tiny", "1.0")])
    assert files == {"tiny": path}
    assert wheels.pin_files([Pin("tiny", "1.0", ("sha256:00", digest))], files) == \
        [Pin("tiny", "1.0", (digest,))]
    with pytest.raises(BuildError, match="does not match the hashes the index gave"):
        wheels.pin_files([Pin("tiny", "1.0", ("sha256:00",))], files)
    with pytest.raises(BuildError, match="no wheel for the sandbox's platform was fetched "
                                         "for other==2"):
        wheels.wheels_in(tmp_path, [Pin("tiny", "1.0"), Pin("other", "2")])


def test_the_committed_lock_pins_every_wheel_once_and_covers_requirements_in() -> None:
    pins = wheels.parse_pins(LOCK.read_text())
    lines = [ln for ln in LOCK.read_text().splitlines() if ln and not ln.startswith("#")]
    assert len(pins) == len(lines) >= 60
    assert all(len(p.hashes) == 1 and re.fullmatch(r"sha256:[0-9a-f]{64}", p.hashes[0])
               for p in pins)
    assert [p.name for p in pins] == sorted(p.name for p in pins)
    names = {p.name for p in pins}
    top = [re.split(r"[<>=; ]", ln.split("#")[0].strip())[0] for ln in
           (docker_dir() / "sandbox" / "requirements.in").read_text().splitlines()]
    assert {wheels.canonical(t) for t in top if t} <= names
    assert "Regenerate with docker/lock-wheels.sh" in LOCK.read_text()
    assert (ROOT / "docker" / "lock-wheels.sh").is_file()


def test_lock_text_is_sorted_with_a_header() -> None:
    text = lock.lock_text([Pin("b", "1", ("sha256:1",)), Pin("a", "2", ("sha256:2",))], "x.in")
    body = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert body == ["a==2 --hash=sha256:2", "b==1 --hash=sha256:1"]
    assert "Top level: x.in." in text and "CPython 3.11.2" in text


def test_fetch_is_offline_when_the_folder_matches_the_lock(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "wheels"
    dest.mkdir()
    path = wheel(dest, "tiny", "1.0")
    stale = wheel(dest, "old", "0.1")
    digest = "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    lockfile = tmp_path / "requirements.lock"
    lockfile.write_text(f"tiny==1.0 --hash={digest}\n")
    calls: list[list[Pin]] = []

    def download(pins: list[Pin], folder: Path) -> dict[str, Path]:
        calls.append(list(pins))
        wheel(folder, "tiny", "1.0")
        return wheels.wheels_in(folder, pins)

    monkeypatch.setattr(wheels, "download", download)
    assert lock.fetch(lockfile, dest) == 1
    assert len(calls) == 1 and not stale.exists()  # first time: fetched, stale wheel gone
    assert lock.fetch(lockfile, dest) == 1
    assert len(calls) == 1  # second time: no download at all
    path.unlink()
    assert lock.fetch(lockfile, dest) == 1  # a wheel removed by hand: fetched again
    assert len(calls) == 2 and path.is_file()


def test_fetch_refuses_an_unhashed_lock(tmp_path: Path) -> None:
    lockfile = tmp_path / "requirements.lock"
    lockfile.write_text("six==1.17.0\n")
    with pytest.raises(SandboxError, match="every package must carry a --hash"):
        lock.fetch(lockfile, tmp_path / "w")


# ----- staging ------------------------------------------------------------------------------
def test_build_staging_is_a_per_user_cache(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    assert build_cache({"XDG_CACHE_HOME": "/c"}) == Path("/c/sandbox-kernel/build")
    assert build_cache({"SANDBOX_BUILD_DIR": "/b", "XDG_CACHE_HOME": "/c"}) == Path("/b")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert build_cache({}) == tmp_path / ".cache" / "sandbox-kernel" / "build"
    a, b = context_dir("a/b:c", {"XDG_CACHE_HOME": "/c"}), context_dir("a_b_c", {
        "XDG_CACHE_HOME": "/c"})
    assert a.parent == Path("/c/sandbox-kernel/build") and a != b
    assert not str(context_dir("x:y")).startswith(str(ROOT))


def test_the_build_script_stages_where_the_package_says(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path)}
    for tag in ("sandbox-kernel:agent-v9", "team/course:2025"):
        out = subprocess.run(["bash", str(docker_dir() / "build-sandbox.sh"), "--tag", tag,
                              "--print-context"], env=env, capture_output=True, text=True,
                             check=True).stdout.strip()
        assert out == str(context_dir(tag, env))


# ----- npm ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "ok"), [
    ({}, True), ({"os": ["linux"], "cpu": ["x64"]}, True), ({"os": ["darwin"]}, False),
    ({"os": ["!win32"]}, True), ({"os": ["!linux"]}, False), ({"cpu": ["arm64"]}, False),
    ({"libc": ["musl"]}, False), ({"libc": ["glibc"], "os": ["linux", "darwin"]}, True),
])
def test_npm_entries_for_the_sandbox_platform(entry: dict[str, list[str]], ok: bool) -> None:
    assert npm.for_sandbox(entry) is ok


def test_npm_tarballs_are_checked_against_the_lock_integrity(tmp_path: Path) -> None:
    blob = b"tarball bytes"
    digest = hashlib.sha512(blob).hexdigest()
    integrity = "sha512-" + base64.b64encode(bytes.fromhex(digest)).decode()
    entry = {"integrity": integrity}
    with pytest.raises(BuildError, match="was not fetched or does not match"):
        npm.check_cached(tmp_path, "node_modules/x", entry)
    path = tmp_path / "_cacache" / "content-v2" / "sha512" / digest[:2] / digest[2:4]
    path.mkdir(parents=True)
    (path / digest[4:]).write_bytes(b"tampered")
    with pytest.raises(BuildError, match="npm package x was not fetched or does not match"):
        npm.check_cached(tmp_path, "node_modules/x", entry)
    (path / digest[4:]).write_bytes(blob)
    npm.check_cached(tmp_path, "node_modules/x", entry)
    with pytest.raises(BuildError, match="has no sha512 integrity"):
        npm.check_cached(tmp_path, "node_modules/x", {"integrity": "sha1-abc"})


def test_npm_errors_become_one_line() -> None:
    err = ("npm error code E404\nnpm error 404 Not Found - GET https://r/x - Not found\n"
           "npm error 404\nnpm error 404  'x@latest' is not in this registry.\n"
           "npm error A complete log of this run can be found in: /x.log\n")
    assert npm.npm_error(err) == ("404 Not Found - GET https://r/x - Not found; 404 'x@latest' "
                                  "is not in this registry.")


# ----- the derived Dockerfile -----------------------------------------------------------------
BASE_ID = "sha256:" + "c" * 64


def test_dockerfile_with_every_kind_of_package() -> None:
    text = derived.dockerfile(derived.Plan(
        "sandbox-kernel:agent-v1", BASE_ID, "course:1", (Pin("tabulate", "0.9.0", ("sha256:1",)),),
        ("jq", "graphviz"), {"is-number": "7.0.0"}))
    stages = text.split("\nFROM ")
    assert [s.split("\n")[0] for s in stages[1:]] == [f"{BASE_ID} AS python",
                                                      f"{BASE_ID} AS node", BASE_ID]
    python, node, final = stages[1:]
    assert "--require-hashes --no-deps" in python and "--no-index" in python
    assert "COPY wheels/" in python
    assert "python -S /tmp/overlay.py /tmp/requirements.lock /overlay /opt/venv/lib/" in python
    assert "npm ci --offline --cache /tmp/npm/cache --ignore-scripts" in node
    assert python.count('LABEL sandbox_kernel.stage_of="course:1"') == 1  # pruned after
    assert "stage_of" not in final
    assert "COPY wheels" not in final and "COPY npm" not in final  # only installed files
    assert "apt-get install -y --no-install-recommends jq graphviz" in final
    assert "rm -rf /var/lib/apt/lists/* /var/cache/apt/*" in final
    assert "COPY --from=python /overlay/ /" in final
    assert "COPY --from=node /opt/sandbox-node/ /opt/sandbox-node/" in final
    assert "ln -sfn /opt/sandbox-node/node_modules /opt/node/lib/node" in final
    assert "-S -c \"import sys; sys.path.append(" in final and "main(['check'])" in final
    assert "-m pip" not in final  # nothing starts Python with site once packages are in
    assert "find / -xdev -perm /6000 -type f -exec chmod a-s" in final
    assert 'sandbox_kernel.derived_packages="tabulate==0.9.0 jq graphviz is-number@7.0.0"' \
        in final
    assert text.rstrip().endswith("USER 1000:1000")


def test_dockerfile_with_only_python_has_no_apt_or_node() -> None:
    pins = (Pin("six", "1", ("sha256:1",)),)
    text = derived.dockerfile(derived.Plan("img", BASE_ID, "d:1", pins))
    assert text.count("\nFROM ") == 2
    assert "apt-get" not in text and "npm" not in text and "/opt/node/lib/node" not in text
    assert text.rstrip().endswith("USER 1000:1000")


def test_dockerfile_with_only_apt_refreshes_the_font_cache() -> None:
    text = derived.dockerfile(derived.Plan("img", BASE_ID, "d:1", apt=("fonts-noto-core",)))
    assert text.count("\nFROM ") == 1 and "COPY --from" not in text
    assert "rm -f /opt/sandbox-kernel/mplconfig/fontlist-*.json" in text


def test_docker_build_failures_name_the_reason() -> None:
    lines = ["Step 9/12 : RUN pip check", "tabulate 1 requires wcwidth, which is not installed.",
             "The command '/bin/sh -c pip check' returned a non-zero code: 1"]
    assert failure(lines) == ("tabulate 1 requires wcwidth, which is not installed. (The "
                              "command '/bin/sh -c pip check' returned a non-zero code: 1)")
    assert failure(["Step 1/2 : FROM x", "ERROR: something broke"]) == "ERROR: something broke"
    assert failure([]) == "no output"


# ----- the command line ---------------------------------------------------------------------
def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = cli.main(list(args))
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize(("args", "expected"), [
    (["build-image", "-r", "/no/such/req.txt", "--tag", "a:b"],
     "requirements file not found: /no/such/req.txt"),
    (["build-image", "--apt", "jq", "rm -rf", "--tag", "a:b"], "--apt 'rm -rf' is not a Debian"),
    (["build-image", "--npm", "github:x/y", "--tag", "a:b"], "--npm 'github:x/y' is not an npm"),
    (["build-image", "--npm", "lodash", "--tag", "Not A Tag"], "--tag 'Not A Tag' is not a valid"),
    (["build-image", "--npm", "lodash"], "a derived image needs --tag"),
    (["build-image", "--npm", "lodash", "--tag", "a:b", "--from", "bad image"],
     "--from 'bad image' is not a valid image name"),
    (["build-image", "--npm", "lodash", "--tag", "a:b", "--base", "debian"],
     "--base is the OS image of the sandbox image itself"),
    (["build-image", "--from", "x:y"], "--from is for derived images"),
    (["build-image", "--tag", "BAD"], "--tag 'BAD' is not a valid image name"),
    (["install", "--prefix", "/nonexistent", "--name", "bad name"], "--name 'bad name' must be"),
    (["install", "--prefix", "/nonexistent", "--display-name", "two\nlines"],
     "--display-name must be one printable line"),
    (["install", "--prefix", "/nonexistent", "--image", "Bad:Image"],
     "--image 'Bad:Image' is not a valid image name"),
])
def test_bad_arguments_are_one_line_errors_before_any_work(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        args: list[str], expected: str) -> None:
    def no_docker(*a: object, **k: object) -> None:
        raise AssertionError("docker was called for bad arguments")

    monkeypatch.setattr(derived, "inventory", no_docker)
    monkeypatch.setattr(cli_images.subprocess, "call", no_docker)
    code, err = run_cli(capsys, *args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("sandbox-kernel: "), err
    assert expected in err, err


def test_build_image_without_packages_runs_the_script_with_the_tag(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(cli_images.subprocess, "call", lambda argv, env: seen.append(argv) or 0)
    assert cli.main(["build-image", "--tag", "me/img:dev", "--no-cache"]) == 0
    argv = seen[0]
    assert argv[1].endswith("build-sandbox.sh")
    assert argv[argv.index("--tag") + 1] == "me/img:dev" and "--no-cache" in argv


def test_derived_build_gets_validated_inputs(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    reqs = tmp_path / "r.txt"
    reqs.write_text("tabulate\n")
    specs: list[derived.DerivedSpec] = []
    monkeypatch.setattr(derived, "build", lambda spec: specs.append(spec) or True)
    assert cli.main(["--image", "base:1", "build-image", "-r", str(reqs), "--apt", "jq",
                     "--apt", "graphviz", "--npm", "lodash@4", "is-number", "--tag", "d:1"]) == 0
    spec = specs[0]
    assert (spec.tag, spec.base, spec.apt) == ("d:1", "base:1", ("jq", "graphviz"))
    assert dict(spec.npm) == {"lodash": "4", "is-number": "latest"}
    assert spec.requirements is not None and spec.requirements.lines[0].name == "tabulate"


def test_a_derived_image_may_not_replace_its_base() -> None:
    with pytest.raises(UsageError, match="is the image it derives from"):
        derived.build(derived.DerivedSpec(tag="x:1", base="x:1"))


# ----- kernelspecs ----------------------------------------------------------------------------
def test_install_with_an_image_and_a_display_name(tmp_path: Path) -> None:
    written = install(prefix=str(tmp_path), name="course", display_name="Course 101",
                      image="team/course:2025")
    specs = {Path(p).name: json.loads((Path(p) / "kernel.json").read_text()) for p in written}
    assert set(specs) == {"course", "course-node"}
    py, node = specs["course"], specs["course-node"]
    assert py["display_name"] == "Course 101"
    assert node["display_name"] == "Course 101 (JavaScript)"
    assert py["argv"][-1] == "--Sandbox.image=team/course:2025"
    assert node["argv"][-2:] == ["--Sandbox.image=team/course:2025", "--Sandbox.language=node"]
    assert py["metadata"]["sandbox_kernel"] == {"language": "python",
                                                "image": "team/course:2025"}
    assert (Path(written[0]) / "logo-64x64.png").is_file()


def test_install_without_an_image_keeps_the_defaults(tmp_path: Path) -> None:
    written = install(prefix=str(tmp_path))
    specs = {Path(p).name: json.loads((Path(p) / "kernel.json").read_text()) for p in written}
    assert specs["sandbox"]["display_name"] == "Python 3 (sandbox)"
    assert specs["sandbox-node"]["display_name"] == "JavaScript (Node.js, sandbox)"
    assert not [a for s in specs.values() for a in s["argv"] if a.startswith("--Sandbox.image")]


@pytest.mark.parametrize("name", ["", "a b", "x/y", "é", "a" * 61, "../up"])
def test_bad_kernelspec_names(name: str) -> None:
    with pytest.raises(UsageError):
        check_names(name, None)


def test_install_with_a_name_gets_a_distinct_display_name(tmp_path: Path) -> None:
    written = install(prefix=str(tmp_path), name="course")
    specs = {Path(p).name: json.loads((Path(p) / "kernel.json").read_text()) for p in written}
    assert specs["course"]["display_name"] == "Python 3 (sandbox: course)"
    assert specs["course-node"]["display_name"] == "JavaScript (Node.js, sandbox: course)"


def test_uninstall_removes_the_pair_and_only_sandbox_kernels(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    kernels = tmp_path / "share" / "jupyter" / "kernels"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
    install(prefix=str(tmp_path), name="course")
    other = kernels / "other"
    other.mkdir()
    (other / "kernel.json").write_text(json.dumps(
        {"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
         "display_name": "Other", "language": "python"}))
    assert cli.main(["uninstall", "--name", "course"]) == 0
    out = capsys.readouterr().out
    assert f"removed kernelspec {kernels / 'course'}" in out
    assert not (kernels / "course").exists() and not (kernels / "course-node").exists()
    assert cli.main(["uninstall", "--name", "other"]) == 1
    assert "is not a sandbox kernel" in capsys.readouterr().err
    assert (other / "kernel.json").is_file()
    assert cli.main(["uninstall", "--name", "course"]) == 1
    assert "no sandbox kernelspec named 'course'" in capsys.readouterr().err
