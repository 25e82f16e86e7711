"""Limit parsing is a security boundary: strict ASCII numbers, ranges named in every refusal."""

from __future__ import annotations

import pytest

from sandbox_kernel.errors import LimitError, SandboxError
from sandbox_kernel.sandbox.spec import RULES, Limits
from sandbox_kernel.sandbox.units import (
    GiB,
    KiB,
    MiB,
    format_seconds,
    format_size,
    parse_duration,
    parse_number,
    parse_size,
)

MEM_LO, MEM_HI = int(RULES["memory"].lo), int(RULES["memory"].hi)


def mem(v: object) -> int:
    return parse_size(v, "memory", MEM_LO, MEM_HI)


def cpus(v: object) -> float:
    return parse_number(v, "cpus", 0.05, 64)


def pids(v: object) -> float:
    return parse_number(v, "pids", 8, 4096, integer=True)


def timeout(v: object) -> float:
    return parse_duration(v, "timeout", 1, 7 * 86400)


# (parser, the two strings its refusals must contain to name the range)
PARSERS = {
    "size": (mem, ("32m", "64g")),
    "number": (cpus, ("0.05", "64")),
    "count": (pids, ("8", "4096")),
    "duration": (timeout, ("1s", "604800s")),
}

BAD_INPUTS = [
    pytest.param(-1, id="minus-one"),
    pytest.param("-1", id="minus-one-str"),
    pytest.param(0, id="zero"),
    pytest.param("0", id="zero-str"),
    pytest.param("nan", id="nan-str"),
    pytest.param("inf", id="inf-str"),
    pytest.param(1e99, id="1e99"),
    pytest.param("1e99", id="1e99-str"),
    pytest.param(10**30, id="huge-int"),
    pytest.param("512m; rm -rf /", id="shell-injection"),
    pytest.param("\u0665\u0661\u0662m", id="arabic-indic-digits"),
    pytest.param("\uff15\uff11\uff12", id="fullwidth-digits"),
    pytest.param("", id="empty"),
    pytest.param("   ", id="blank"),
    pytest.param("0x10", id="hex"),
    pytest.param("1_000", id="underscore"),
]
#: Refused with the valid range in the message.
NON_NUMBERS = [
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("-inf"), id="minus-inf"),
    pytest.param(True, id="bool"),
    pytest.param(None, id="none"),
    pytest.param([512], id="list"),
]


# ----- valid inputs --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    ("512m", 512 * MiB),
    ("512M", 512 * MiB),
    ("512mb", 512 * MiB),
    ("512MiB", 512 * MiB),
    ("1g", GiB),
    ("1.5g", int(1.5 * GiB)),
    ("65536k", 64 * MiB),
    (" 64m ", 64 * MiB),
    (268435456, 256 * MiB),
    ("268435456", 256 * MiB),
    ("64g", 64 * GiB),
    ("32m", 32 * MiB),
])
def test_parse_size_valid(text: object, expected: int) -> None:
    assert mem(text) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (0.5, 0.5), ("0.5", 0.5), (1, 1.0), ("2", 2.0), ("0.05", 0.05), (64, 64.0),
])
def test_parse_number_valid(value: object, expected: float) -> None:
    assert cpus(value) == pytest.approx(expected)


@pytest.mark.parametrize(("value", "expected"), [
    ("120s", 120.0), ("2m", 120.0), ("2min", 120.0), ("1h", 3600.0), ("300", 300.0),
    (300, 300.0), ("1.5s", 1.5), ("1500ms", 1.5), ("168h", 7 * 86400.0),
])
def test_parse_duration_valid(value: object, expected: float) -> None:
    assert timeout(value) == pytest.approx(expected)


def test_count_is_whole() -> None:
    assert pids("64") == 64
    with pytest.raises(LimitError, match="whole number between 8 and 4096"):
        pids("64.5")


def test_format_roundtrip() -> None:
    for n in (32 * MiB, 512 * MiB, GiB, 64 * GiB):
        assert mem(format_size(n)) == n
    assert format_size(4 * KiB) == "4k"
    assert format_seconds(120.0) == "120s"
    assert format_seconds(1.5) == "1.5s"


# ----- every bad input is a LimitError naming the range ---------------------------------------
@pytest.mark.parametrize("kind", sorted(PARSERS))
@pytest.mark.parametrize("value", BAD_INPUTS)
def test_bad_input_refused_with_range(kind: str, value: object) -> None:
    parse, (lo, hi) = PARSERS[kind]
    with pytest.raises(LimitError) as info:
        parse(value)
    err = info.value
    assert isinstance(err, SandboxError)
    assert isinstance(err, ValueError)
    msg = str(err)
    assert "\n" not in msg
    assert len(msg) < 200, msg
    assert lo in msg and hi in msg, f"message does not name the range {lo}..{hi}: {msg!r}"


@pytest.mark.parametrize("value", ["512m; rm -rf /", "\u0665\u0661\u0662m", "0x10"])
def test_refusal_message_quotes_input_bounded(value: str) -> None:
    with pytest.raises(LimitError) as info:
        mem(value * 20)
    # the user's text is quoted with repr and cut at 40 characters
    assert repr((value * 20)[:40]) in str(info.value)


@pytest.mark.parametrize("value", NON_NUMBERS)
def test_non_numbers_refused(value: object) -> None:
    for parse, _ in PARSERS.values():
        with pytest.raises(LimitError) as info:
            parse(value)
        assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("value", NON_NUMBERS[:1] + NON_NUMBERS[3:5])
def test_non_numbers_refused_with_range(value: object) -> None:
    for parse, (lo, hi) in PARSERS.values():
        with pytest.raises(LimitError) as info:
            parse(value)
        msg = str(info.value)
        assert lo in msg and hi in msg, f"message does not name the range {lo}..{hi}: {msg!r}"


def test_just_outside_the_range() -> None:
    with pytest.raises(LimitError, match=r"between 32m and 64g \(got 31m\)"):
        mem("31m")
    with pytest.raises(LimitError, match="between 32m and 64g"):
        mem("65g")
    with pytest.raises(LimitError, match=r"between 0.05 and 64 \(got 0.04\)"):
        cpus("0.04")
    with pytest.raises(LimitError, match=r"between 1s and 604800s"):
        timeout("0.5s")
    with pytest.raises(LimitError, match=r"between 1s and 604800s"):
        timeout("169h")


# ----- Limits ----------------------------------------------------------------------------------
def test_defaults() -> None:
    lim = Limits()
    assert lim.memory == 512 * MiB
    assert lim.cpus == 1.0
    assert lim.pids == 20
    assert lim.timeout == 300.0
    assert lim.describe()["memory"] == "512m"
    assert lim.describe()["file-size"] == "1g"


@pytest.mark.parametrize(("field", "value"), [
    ("memory", -1), ("memory", 0), ("memory", float("nan")), ("memory", 1e99),
    ("cpus", 0), ("cpus", float("inf")), ("pids", True), ("pids", "20"), ("pids", None),
    ("timeout", -5), ("memory", 65 * GiB),
])
def test_limits_constructor_refuses(field: str, value: object) -> None:
    with pytest.raises(LimitError) as info:
        Limits(**{field: value})  # type: ignore[arg-type]
    assert field in str(info.value)


def test_changed_parses_text() -> None:
    lim = Limits().changed(memory="1g", cpus=0.5, pids="64", timeout="2m")
    assert (lim.memory, lim.cpus, lim.pids, lim.timeout) == (GiB, 0.5, 64, 120.0)
    assert isinstance(lim.pids, int)
    assert Limits().changed(**{"file-size": "2g"}).file_size == 2 * GiB
    # the original is frozen and unchanged
    assert Limits().memory == 512 * MiB


def test_changed_respects_ceilings() -> None:
    ceilings = Limits(memory=GiB, cpus=2, pids=100)
    assert Limits().changed(ceilings=ceilings, memory="1g").memory == GiB
    with pytest.raises(LimitError) as info:
        Limits().changed(ceilings=ceilings, memory="2g")
    assert "between 32m and 1g" in str(info.value)
    with pytest.raises(LimitError, match=r"between 0\.05 and 2"):
        Limits().changed(ceilings=ceilings, cpus=4)
    with pytest.raises(LimitError, match="between 8 and 100"):
        Limits().changed(ceilings=ceilings, pids=101)


@pytest.mark.parametrize("name", ["foo", "memory ", "__class__", "Memory", "swap"])
def test_changed_unknown_limit(name: str) -> None:
    with pytest.raises(LimitError) as info:
        Limits().changed(**{name: "1"})
    msg = str(info.value)
    assert "unknown limit" in msg
    assert "memory, cpus, pids, timeout, cpu-time" in msg


def test_check_within() -> None:
    ceilings = Limits(memory=GiB)
    Limits(memory=GiB).check_within(ceilings)
    with pytest.raises(LimitError) as info:
        Limits(memory=2 * GiB).check_within(ceilings)
    msg = str(info.value)
    assert "ceiling of 1g" in msg
    assert "allowed: 32m to 1g" in msg
    with pytest.raises(LimitError, match="pids 21 is over"):
        Limits(pids=21).check_within(Limits(pids=20))


def test_nan_refused_through_changed() -> None:
    with pytest.raises(LimitError):
        Limits().changed(cpus=float("nan"))
    with pytest.raises(LimitError):
        Limits().changed(timeout="nan")
