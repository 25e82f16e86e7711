"""Outputs of one cell in a form two kernels can be compared in: what is meant to vary
between runs (addresses, times, rates, process ids, temporary paths, image bytes) is
replaced by a placeholder; everything else is kept as the kernel sent it."""

from __future__ import annotations

import base64
import re
import struct
from typing import Any

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"0x[0-9a-fA-F]{6,}"), "0xADDR"),
    (re.compile(r"\b\d+(\.\d+)?(e[+-]?\d+)?\s?(ns|µs|\u03bcs|us|ms|s)(?!\w)"), "T"),
    (re.compile(r"\d+(\.\d+)?(it/s|s/it)"), "RATE"),
    (re.compile(r"\[\d\d:\d\d<[^\]]*\]"), "[ETA]"),
    (re.compile(r"/tmp/ipykernel_\d+/\d+\.py"), "CELLFILE"),
    (re.compile(r"<ipython-input-\d+-[0-9a-f]+>"), "CELLFILE"),
    (re.compile(r"\b\d{6,}\.py\b"), "CELLFILE"),
    (re.compile(r"Cell In\[\d+\]"), "Cell In[N]"),
    (re.compile(r"(/[\w.-]+)+/site-packages/"), "SITE/"),
    (re.compile(r"(/[\w.-]+)+/lib/python3\.\d+/"), "STDLIB/"),
]
_PADDING = re.compile(r" +(?=[\r\n])")  # progress bars pad to the last line's length
_MEAN_STD = re.compile(r"T ± T per loop \(mean ± std\. dev\. of .*\)")


def text(value: str) -> str:
    """Text with ANSI colours and varying figures replaced."""
    value = _ANSI.sub("", value)
    for pattern, repl in _RULES:
        value = pattern.sub(repl, value)
    return _PADDING.sub("", _MEAN_STD.sub("T per loop", value))


def _png(data: str) -> str:
    raw = base64.b64decode(data)
    width, height = struct.unpack(">II", raw[16:24])
    return f"<png {width}x{height}>"


def bundle(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mime, value in data.items():
        if mime == "image/png":
            out[mime] = _png(value)
        elif isinstance(value, str):
            out[mime] = text(value)
        else:
            out[mime] = value
    return out


def output(out: dict[str, Any]) -> dict[str, Any]:
    """One nbformat output, normalised; stream and error text joined and cleaned."""
    kind = out["output_type"]
    if kind == "stream":  # `!cmd` under ipykernel runs on a pty: its lines end in \r\n
        return {"stream": out["name"], "text": text(out["text"].replace("\r\n", "\n"))}
    if kind == "error":
        return {"error": out["ename"], "evalue": text(out["evalue"]),
                "traceback": text("\n".join(out["traceback"]))}
    row: dict[str, Any] = {kind: bundle(out.get("data", {}))}
    if kind == "execute_result":
        row["count"] = out.get("execution_count") is not None
    return row


def outputs(cell_outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A cell's outputs, normalised; consecutive stream outputs of one name merged first,
    since how text is split into messages is a matter of timing."""
    merged: list[dict[str, Any]] = []
    for out in cell_outputs:
        last = merged[-1] if merged else None
        if (out["output_type"] == "stream" and last is not None
                and last["output_type"] == "stream" and last["name"] == out["name"]):
            merged[-1] = {**last, "text": last["text"] + out["text"]}
        else:
            merged.append(dict(out))
    return [output(out) for out in merged]
