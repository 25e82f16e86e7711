"""What a derived image may add is checked before anything is fetched: requirements files,
Debian and npm names, image tags (one-line UsageErrors naming the file and line)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox_kernel.errors import UsageError
from sandbox_kernel.sandbox.packages import (
    Pin,
    check_apt,
    check_npm,
    check_tag,
    logical_lines,
    parse_requirements,
)

H1 = "sha256:" + "a" * 64
H2 = "sha256:" + "b" * 64


def reqs_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "requirements.txt"
    path.write_text(text)
    return path


def refusal(tmp_path: Path, text: str) -> str:
    with pytest.raises(UsageError) as info:
        parse_requirements(reqs_file(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_plain_requirements_with_comments_continuations_extras_and_markers(
        tmp_path: Path) -> None:
    reqs = parse_requirements(reqs_file(tmp_path, (
        "# a comment\n"
        "Tabulate>=0.9  # trailing comment\n"
        "\n"
        "requests[socks] \\\n"
        "    <3\n"
        "pywin32; sys_platform == 'win32'\n"
        "tomli; python_version < '3.12'\n")))
    assert not reqs.hashed
    assert [(line.number, line.name, line.text()) for line in reqs.lines] == [
        (2, "tabulate", "Tabulate>=0.9"),
        (4, "requests", "requests[socks]<3"),
        (7, "tomli", 'tomli; python_version < "3.12"'),  # markers are the sandbox's (3.11)
    ]


def test_hashed_requirements_give_exact_pins(tmp_path: Path) -> None:
    reqs = parse_requirements(reqs_file(tmp_path, (
        f"Six==1.17.0 --hash={H1} \\\n    --hash={H2.upper().replace('SHA256', 'sha256')}\n"
        f"tabulate==0.9.0 --hash {H1}\n")))
    assert reqs.hashed
    assert [line.pin() for line in reqs.lines] == [
        Pin("six", "1.17.0", (H1, H2)), Pin("tabulate", "0.9.0", (H1,))]
    assert reqs.lines[0].pin().line() == f"six==1.17.0 --hash={H1} --hash={H2}"


@pytest.mark.parametrize(("text", "expected"), [
    ("-e .\n", "requirements.txt:1: option -e is not supported here"),
    ("ok\n-r other.txt\n", "requirements.txt:2: option -r is not supported"),
    ("--index-url https://example.invalid/simple\nsix\n", "option --index-url is not supported"),
    ("--extra-index-url=https://example.invalid\n", "option --extra-index-url=https"),
    ("./local/pkg\n", "is not a package requirement (URLs, paths"),
    ("https://example.invalid/x.whl\n", "is not a package requirement"),
    ("git+https://example.invalid/x.git\n", "is not a package requirement"),
    ("six @ https://example.invalid/six.whl\n", "six @ URL is not supported"),
    ("six\nSix>=1\n", "requirements.txt:2: six is already required on line 1"),
    (f"six==1 --hash={H1}\ntabulate\n", "requirements.txt:2: tabulate has no --hash but "
                                         "other lines do"),
    (f"six>=1 --hash={H1}\n", "a requirement with --hash must be pinned with =="),
    (f"six==1.* --hash={H1}\n", "must be pinned with =="),
    ("six==1 --hash=sha256:abc\n", "is not a sha256, sha384 or sha512 digest"),
    ("six==1 --hash=md5:" + "0" * 32 + "\n", "is not a sha256, sha384 or sha512 digest"),
    ("six==1 --hash\n", "malformed --hash option"),
    ("# nothing\n\n", "lists no requirements for the sandbox's platform"),
    ("pywin32; sys_platform == 'win32'\n", "lists no requirements"),
])
def test_bad_requirements_are_one_line_refusals(tmp_path: Path, text: str,
                                                expected: str) -> None:
    assert expected in refusal(tmp_path, text)


def test_missing_unreadable_and_huge_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"requirements file not found: .*nope\.txt"):
        parse_requirements(tmp_path / "nope.txt")
    with pytest.raises(UsageError, match="requirements file is a directory"):
        parse_requirements(tmp_path)
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00six")
    with pytest.raises(UsageError, match="cannot read requirements file"):
        parse_requirements(tmp_path / "bin.txt")
    (tmp_path / "big.txt").write_text("six\n" * 300_000)
    with pytest.raises(UsageError, match="larger than 1 MiB"):
        parse_requirements(tmp_path / "big.txt")


def test_logical_lines_follow_pip() -> None:
    assert logical_lines("a \\\n b\n#c\nd # e\nurl#frag\n\\\n") == [
        (1, "a   b"), (4, "d"), (5, "url#frag")]


@pytest.mark.parametrize("name", ["jq", "graphviz", "libgl1", "g++", "python3.11",
                                  "graphviz=2.42.2-7", "fonts-noto-cjk", "r-base=4.2.2-1:1"])
def test_debian_names_are_accepted(name: str) -> None:
    assert check_apt([name]) == (name,)


@pytest.mark.parametrize("name", ["", "a", "Jq", "jq;rm -rf /", "-y", "jq bash", "../x",
                                  "jq/bookworm", "$(id)", "pkg=\n"])
def test_bad_debian_names_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="is not a Debian package name"):
        check_apt(["jq", name])


def test_npm_specs_become_dependencies() -> None:
    assert check_npm(["lodash", "is-number@7.0.0", "@types/node@^22", "left-pad@>=1 <2",
                      "esbuild@latest"]) == {
        "lodash": "latest", "is-number": "7.0.0", "@types/node": "^22",
        "left-pad": ">=1 <2", "esbuild": "latest"}


@pytest.mark.parametrize("spec", ["", "git+https://example.invalid/x.git", "github:user/repo",
                                  "file:../x", "./pkg", "/abs/pkg.tgz", "https://x/y.tgz",
                                  "Lodash", "lodash@1;rm", "lodash@", "@scope", "x@1:2",
                                  "a" * 215, "@scope/a@git://x"])
def test_bad_npm_specs_are_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="is not an npm package from the registry"):
        check_npm([spec])


def test_npm_spec_given_twice_is_refused() -> None:
    with pytest.raises(UsageError, match="--npm lodash is given twice"):
        check_npm(["lodash", "lodash@4"])


@pytest.mark.parametrize("tag", ["course", "course:2025", "sandbox-kernel/course:v1.2-rc_3",
                                 "localhost:5000/team/img:latest", "a.b/c__d/e-f:1",
                                 "sandbox-kernel-test/derived:12345"])
def test_image_tags_are_accepted(tag: str) -> None:
    assert check_tag(tag) == tag


@pytest.mark.parametrize("tag", ["", "Course", "course:", ":tag", "course:-x", "a//b",
                                 "course tag", "course@sha256:" + "0" * 64, "a:b:c",
                                 "-course", "course:" + "x" * 129, "x" * 256])
def test_bad_image_tags_are_refused(tag: str) -> None:
    with pytest.raises(UsageError, match="is not a valid image name"):
        check_tag(tag)
