"""Live installs, pure logic: install lines in cells, pip and npm arguments, the policy,
wheel choice from a pylock, uv's and npm's errors, and the network hint."""

from __future__ import annotations

import pytest

from sandbox_kernel.errors import InstallError, UsageError
from sandbox_kernel.kernel.cells import Code
from sandbox_kernel.kernel.install_cells import Install, install_of, split_installs
from sandbox_kernel.kernel.nethint import NetworkHint
from sandbox_kernel.kernel.pip_args import parse_npm, parse_pip
from sandbox_kernel.sandbox import docker_options, npm_fetch, pip_fetch
from sandbox_kernel.sandbox.install_policy import InstallPolicy, Rule, ToolPolicy, pick
from sandbox_kernel.sandbox.pip_fetch import PipRequest


def complete(code: str) -> tuple[str, int | None]:
    from IPython.core.inputtransformer2 import TransformerManager

    result: tuple[str, int | None] = TransformerManager().check_complete(code)
    return result


def split(body: str, lang: str = "python") -> list[object] | None:
    parts = split_installs(Code(lang, body), complete)
    return None if parts is None else [p.argv if isinstance(p, Install) else p.body
                                       for p in parts]


def test_cells_without_installs_are_left_alone() -> None:
    assert split("import os\nprint(1)") is None
    assert split("%pip list\n!pip freeze") is None
    assert split('s = """\n%pip install x\n"""\nprint(s)') is None  # text in a string
    assert split("f(1,\n!pip install x)") is None


@pytest.mark.parametrize("line", ["%pip install a b", "!pip install a b", "!pip3 install a b",
                                  "!python -m pip install a b", "! pip install a b",
                                  "!{sys.executable} -m pip install a b"])
def test_python_spellings(line: str) -> None:
    assert split(line) == [("a", "b")]


def test_mixed_cells_run_in_order() -> None:
    assert split("x = 1\n%pip install -q a\nimport a\n!npm install b\nprint(x)") == [
        "x = 1\n", ("-q", "a"), "import a\n", ("b",), "print(x)"]


def test_installs_inside_blocks_are_refused() -> None:
    with pytest.raises(UsageError, match="line 4: '!pip install a' is inside a block"):
        split("try:\n    import a\nexcept ImportError:\n    !pip install a\n    import a")
    with pytest.raises(UsageError, match="inside a block"):
        split("if True:\n    pass\n    %pip install a")


def test_node_and_shell_cells() -> None:
    assert split("npm install a\nconsole.log(1)", "node") == [("a",), "console.log(1)"]
    assert split("%npm i a@^1\n!npm add b", "node") == [("a@^1",), ("b",)]
    assert split("  npm install a", "node") is None  # indented: part of the code
    assert split("# deps\npip install -q a\nnpm install b\n", "bash") == [("-q", "a"), ("b",)]
    assert split("cd /tmp && pip install a\n", "bash") is None  # a script: runs as it is


def test_shell_decorations() -> None:
    assert install_of("pip", " a > /dev/null 2>&1", "").quiet
    assert not install_of("pip", " a 2>/dev/null", "").quiet
    cut = install_of("pip", " a 2>&1 | tail -1", "")
    assert (cut.argv, cut.dropped) == (("a",), "| tail -1")
    with pytest.raises(UsageError, match="uses variables"):
        install_of("pip", " {pkg}", "!pip install {pkg}")


def test_pip_arguments() -> None:
    p = parse_pip(["-q", "-U", "Requests[socks]>=2", "pywin32; sys_platform == 'win32'",
                   "--no-cache-dir", "--user", "-r", "req.txt"])
    assert p.request == PipRequest(("Requests[socks]>=2",), upgrade=True)
    assert p.request.names() == ["requests"]
    assert p.quiet and p.files == ("req.txt",)


@pytest.mark.parametrize(("argv", "message"), [
    (["-i", "https://x/simple", "a"], "the host fetches from the administrator's index"),
    (["--extra-index-url=https://x", "a"], "administrator's index only"),
    (["-e", "."], "editable installs"),
    (["./pkg.whl"], "is a URL or a file"),
    (["git+https://github.com/a/b"], "is a URL or a file"),
    (["a @ https://x/a.whl"], "is a URL or a file"),
    (["--no-binary", ":all:", "a"], "installs wheels only"),
    ([], "name at least one package"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_pip_refusals(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse_pip(argv)


def test_npm_arguments() -> None:
    assert parse_npm(["lodash", "@types/node@^20", "-D", "--silent"]).specs == {
        "lodash": "latest", "@types/node": "^20"}
    assert parse_npm(["-s", "x"]).quiet
    for argv, message in ((["--registry", "https://x", "a"], "administrator's index"),
                          (["https://x/a.tgz"], "not an npm package"),
                          (["../a"], "not an npm package"), ([], "name the packages"),
                          (["--foo", "a"], "not supported")):
        with pytest.raises(UsageError, match=message):
            parse_npm(argv)


def test_policy_rules_and_reasons() -> None:
    pol = ToolPolicy("pip", allow=("sk-*", "numpy"), deny=(Rule.parse("sk-bad: too big"),
                                                            Rule.parse("SK-WORSE")))
    pol.check(["sk-good", "numpy"])
    with pytest.raises(InstallError, match=r"^sk-bad is not allowed by the policy: too big "
                                           r"\(Sandbox.pip_deny lists 'sk-bad'\)$"):
        pol.check(["sk-bad"], ["sk-bad"])
    with pytest.raises(InstallError, match=r"sk-worse .a dependency of sk-good. is not allowed.*"
                                           r"deny-list refuses it"):
        pol.check(["sk-good", "sk-worse"], ["sk-good"])
    with pytest.raises(InstallError, match="not on the administrator's allow-list"):
        pol.check(["pandas"])
    ToolPolicy("pip", allow=("Scikit_Learn",)).check(["scikit-learn"])  # canonical names
    with pytest.raises(InstallError) as err:
        ToolPolicy("npm", allow=()).check(["lodash"])
    assert err.value.kind == "policy" and "Sandbox.npm_allow: nothing" in str(err.value)
    with pytest.raises(InstallError, match=r"over the size cap of 1 KB per sandbox .10 bytes"):
        InstallPolicy(max_total=1024).check_size(10, 2000)


def test_host_pip_settings_by_pips_precedence() -> None:
    config = {"global.index-url": "https://g/simple", "install.index-url": "https://i/simple"}
    assert pick(config, "index-url") == "https://i/simple"
    assert pick({**config, ":env:.index-url": "https://e"}, "index-url") == "https://e"
    assert InstallPolicy(pip_index_url="https://a").indexes() == ("https://a", ())


def _wheel(tag: str, size: int, digest: str) -> str:
    url = f"https://f/charset_normalizer-3.5.3-{tag}.whl"
    return f'{{ url = "{url}", size = {size}, hashes = {{ sha256 = "{digest * 64}" }} }},\n'


PYLOCK = ('lock-version = "1.0"\n[[packages]]\nname = "Charset_Normalizer"\n'
          'version = "3.5.3"\nwheels = [\n' + _wheel("py3-none-any", 3, "a") +
          _wheel("cp311-cp311-manylinux_2_28_x86_64", 2, "b") +
          _wheel("cp311-cp311-win_amd64", 1, "c") + "]\n")


def test_the_best_wheel_for_the_sandbox() -> None:
    (w,) = pip_fetch.parse_pylock(PYLOCK)
    assert (w.name, w.sha256, w.size) == ("charset-normalizer", "b" * 64, 2)
    assert w.filename.endswith("manylinux_2_28_x86_64.whl")
    with pytest.raises(InstallError, match="no wheel of x 1 for the sandbox's platform"):
        pip_fetch.best_wheel("x", "1", [{"url": "https://f/x-1-cp311-cp311-win_amd64.whl",
                                         "hashes": {"sha256": "a" * 64}}], {})


def test_installed_packages_are_constraints_unless_named() -> None:
    have = {"numpy": "2.4.6", "pandas": "3.1.1", "sk-a": "1.0"}
    assert pip_fetch.constraints(PipRequest(("requests",)), have) == [
        "numpy==2.4.6", "pandas==3.1.1", "sk-a==1.0"]
    assert "numpy==2.4.6" not in pip_fetch.constraints(PipRequest(("numpy<2",)), have)
    assert "numpy==2.4.6" in pip_fetch.constraints(PipRequest(("numpy>=2",)), have)
    assert pip_fetch.constraints(PipRequest(("pandas",), upgrade=True), have)[-1] == "sk-a==1.0"


@pytest.mark.parametrize(("stderr", "kind"), [
    ("error: No solution found\n  cause: Because nope was not found in the package registry",
     "not_found"),
    ("  cause: Because x==1 has no usable wheels and you require x==1", "no_wheel"),
    ("  cause: Because pywin32>=303 has no wheels with a matching platform tag", "no_wheel"),
    ("error: Request failed after 1 retry\n  cause: Failed to fetch: http://x/simple/a/\n"
     "  cause: tcp connect error", "unreachable"),
    ("  cause: Because only a<=1 is available and you require a>=9", "not_found"),
])
def test_uv_errors(stderr: str, kind: str) -> None:
    err = pip_fetch.classify(stderr, "https://idx/simple")
    assert err.kind == kind and "\n" not in str(err)


def test_npm_errors() -> None:
    e404 = "npm error code E404\nnpm error 404 Not Found - GET http://r/nope\nnpm error 404  " \
           "'nope@*' is not in this registry."
    assert npm_fetch.classify(e404, "http://r/").kind == "not_found"
    assert "nope@* was not found" in str(npm_fetch.classify(e404, "http://r/"))
    down = "npm error code ECONNREFUSED\nnpm error request to http://r/x failed"
    assert npm_fetch.classify(down, "http://r/").kind == "unreachable"


def test_package_tmpfs_is_exec_but_only_the_installers() -> None:
    docker = docker_options.packages_options(1 << 30, podman=False).split(",")
    assert {"exec", "nosuid", "nodev", "mode=0755", "uid=998", "gid=998"} <= set(docker)
    assert "noexec" not in docker
    podman = docker_options.packages_options(1 << 30, podman=True).split(",")
    assert "uid=998" not in podman and {"nosuid", "nodev"} <= set(podman)


def test_network_hint_once_per_kernel() -> None:
    hint = NetworkHint()
    hint.feed("stream", {"name": "stderr", "text": "all fine\n"})
    hint.feed("stream", {"name": "stdout", "text": "Could not resolve host: x\n"})
    assert hint.take() is None
    hint.feed("error", {"evalue": "<urlopen error [Errno -3] Temporary failure in name "
                                  "resolution>", "traceback": []})
    line = hint.take()
    assert line is not None and line.count("\n") == 1 and "%pip install" in line
    hint.feed("stream", {"name": "stderr", "text": "curl: (6) Could not resolve host: x\n"})
    assert hint.take() is None
    for text in ("getaddrinfo EAI_AGAIN registry.npmjs.org", "[Errno 101] Network is "
                 "unreachable", "(from versions: none)"):
        fresh = NetworkHint()
        fresh.feed("stream", {"name": "stderr", "text": text})
        assert fresh.take() is not None, text


def test_downloads_carry_the_credentials_of_their_index_only() -> None:
    req = pip_fetch._request("https://idx.example/files/a.whl",
                             ["https://other/simple", "https://me:s%40cret@idx.example/simple"])
    assert req.get_header("Authorization") == "Basic bWU6c0BjcmV0"  # me:s@cret
    assert pip_fetch._request("https://cdn.example/a.whl", ["https://me:x@idx.example/simple"]
                              ).get_header("Authorization") is None
