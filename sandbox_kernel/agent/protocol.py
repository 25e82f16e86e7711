"""The contract between host, agent and workers: every message, its fields and bounds.

This module is the single source (docs/architecture.md, "The contract"). The host and the
agent import it; the Node worker loads `contract.json`, generated from it. A frame is one
JSON object per line with an integer ``id`` and a ``type``; a ``chunk`` frame is followed by
``size`` raw bytes, and so is an ``out`` frame: stream text as UTF-8, read as a ``stream``
frame. Nothing else is valid, and every side checks what it receives.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

PROTOCOL_VERSION = 3

#: Largest JSON line, newline included, in any direction.
MAX_FRAME_BYTES = 8 * 1024 * 1024
#: Raw bytes one ``chunk`` frame carries (file transfers).
CHUNK_BYTES = 1024 * 1024
#: UTF-8 bytes of stream text one ``out`` frame from a worker carries.
OUT_BYTES = 1024 * 1024
#: Frame types whose header is followed by ``size`` raw bytes.
RAW_FRAMES = ("chunk", "out")
#: Nesting depth of any JSON value inside a frame.
MAX_DEPTH = 32
#: Largest file a single transfer moves.
MAX_TRANSFER = 1 << 30
#: Text fields: code, output text, tracebacks.
MAX_TEXT = 8 * 1024 * 1024

#: How a cell ended. `cpu_time` and `crashed` are shown as timeout and error to users.
VERDICTS = ("ok", "error", "timeout", "cpu_time", "oom", "interrupted", "crashed")
LANGUAGES = ("python", "node")
STREAMS = ("stdout", "stderr")
#: What the installer does: list installed packages, install staged wheels or npm tarballs.
INSTALL_TOOLS = ("inventory", "pip", "npm")
#: Frame types the host and a client are given about a running cell, in order of arrival.
OUTPUT_EVENTS = ("stream", "display", "clear", "result", "error", "input_request", "payload")
#: Jupyter comm messages, both ways (docs/architecture.md, "Widgets"): the same frames from
#: the worker to the agent to the host, and from the host down. Binary buffers travel as
#: base64 strings; the host decodes and re-checks them.
COMM_EVENTS = ("comm_open", "comm_msg", "comm_close")
#: Buffers one comm message carries, and their raw bytes in total.
MAX_COMM_BUFFERS = 16
MAX_COMM_BYTES = 4 * 1024 * 1024


class Field(NamedTuple):
    """One field: its kind, bounds, and whether it may be missing or null."""

    kind: str  # int | num | bool | str | enum | strs | strmap | envmap | obj | objs
    hi: float = 0  # str: max chars; int/num: max value; strs/maps: max items
    lo: float = 0
    choices: tuple[str, ...] = ()
    optional: bool = False
    nullable: bool = False


def _int(hi: float = 2**53, lo: float = 0, **kw: Any) -> Field:
    return Field("int", hi, lo, **kw)


def _num(hi: float = 1e12, lo: float = 0, **kw: Any) -> Field:
    return Field("num", hi, lo, **kw)


def _str(hi: float = 100_000, **kw: Any) -> Field:
    return Field("str", hi, **kw)


def _enum(*choices: str, **kw: Any) -> Field:
    return Field("enum", choices=choices, **kw)


_BOOL = Field("bool")
_OBOOL = Field("bool", optional=True)
_PATH = _str(4096)
_LANG = _enum(*LANGUAGES)
_BUNDLE = Field("obj", hi=200)  # mime -> value
_MD = Field("obj", hi=1000)
_ERROR = {"code": _str(20), "message": _str(2000)}
_OUTPUT_EVENTS: dict[str, dict[str, Field]] = {
    "stream": {"name": _enum(*STREAMS), "text": _str(MAX_TEXT)},
    "display": {"data": _BUNDLE, "metadata": _MD, "transient": _MD, "update": _BOOL},
    "clear": {"wait": _BOOL},
    "result": {"data": _BUNDLE, "metadata": _MD, "execution_count": _int(nullable=True)},
    "error": {"ename": _str(1000), "evalue": _str(MAX_TEXT),
              "traceback": Field("strs", hi=10_000)},
    "input_request": {"prompt": _str(100_000), "password": _BOOL},
    "payload": {"source": _enum("page", "ask_exit", "set_next_input"),
                "data": Field("obj", hi=200, optional=True), "start": _int(optional=True),
                "keepkernel": _OBOOL, "text": _str(MAX_TEXT, optional=True), "replace": _OBOOL},
}
_COMM_BODY = {"comm_id": _str(128), "data": Field("obj", hi=10_000),
              "metadata": Field("obj", hi=100), "buffers": Field("strs", hi=MAX_COMM_BUFFERS)}
_COMM: dict[str, dict[str, Field]] = {
    "comm_open": {**_COMM_BODY, "target_name": _str(256), "target_module": _str(256,
                                                                               nullable=True)},
    "comm_msg": _COMM_BODY,
    "comm_close": _COMM_BODY,
}
#: How long a frontend's comm message may run its handler in the interpreter.
_COMM_TIMEOUT = _num(7 * 86400, 0.001)
_INTROSPECT = {"code": _str(MAX_TEXT), "cursor_pos": _int(MAX_TEXT), "lang": _LANG}
_RUN_CELL = {"code": _str(MAX_TEXT), "execution_count": _int(nullable=True),
             "allow_stdin": _BOOL, "silent": _BOOL, "store_history": _BOOL,
             "user_expressions": Field("strmap", hi=100)}

#: host -> agent
HOST_REQUESTS: dict[str, dict[str, Field]] = {
    "hello": {},
    # Move the frames onto a unix socket the host listens on (sandbox/direct.py).
    "link": {"path": _str(200), "token": _str(64)},
    "run": {**_RUN_CELL, "lang": _LANG, "timeout": _num(7 * 86400, 0.001),
            "cpu_time": _num(7 * 86400, 0.001), "output_cap": _int(1 << 40, 1),
            "grace": _num(3600, 0)},
    "input_reply": {"value": _str(1_000_000)},
    "interrupt": {"target": _int(nullable=True), "grace": _num(3600, 0)},
    "exec": {"argv": Field("strs", hi=10_000), "timeout": _num(7 * 86400, 0.001),
             "output_cap": _int(1 << 40, 1), "stream": _BOOL, "env": Field("strmap", hi=1000)},
    "read": {"path": _PATH, "max_bytes": _int(MAX_TRANSFER)},
    "write": {"path": _PATH, "size": _int(MAX_TRANSFER), "parents": _BOOL, "append": _BOOL},
    "chunk": {"size": _int(CHUNK_BYTES)},
    # Live installs (agent/packages.py): a fetched file into the installer's staging
    # folder (followed by chunks, as `write`), then the installer over staged files.
    "stage": {"name": _str(255), "size": _int(MAX_TRANSFER)},
    "install": {"tool": _enum(*INSTALL_TOOLS), "files": Field("strmap", hi=10_000),
                "timeout": _num(7 * 86400, 0.001), "output_cap": _int(1 << 40, 1)},
    "cancel": {"target": _int()},
    "list": {"path": _PATH},
    "stat": {"path": _PATH},
    "delete": {"path": _PATH, "recursive": _BOOL},
    "mkdir": {"path": _PATH, "parents": _BOOL},
    "stats": {},
    "complete": _INTROSPECT,
    "inspect": {**_INTROSPECT, "detail_level": _int(1)},
    "is_complete": {"code": _str(MAX_TEXT), "lang": _LANG},
    "get_var": {"lang": _LANG, "name": _str(128)},
    "set_var": {"lang": _LANG, "name": _str(128), "json": _str(MAX_TEXT)},
    "restart": {"lang": _LANG},
    "set_env": {"env": Field("envmap", hi=1000)},
    "shutdown": {},
    # A frontend's comm message for the Python interpreter: its handler's outputs and comm
    # frames come back under this request's id, then a reply (agent/comms.py).
    **{t: {**f, "timeout": _COMM_TIMEOUT} for t, f in _COMM.items()},
    "comm_info": {"target_name": _str(256, nullable=True)},
}

#: agent -> host. `reply` bodies are checked against REPLIES by the request they answer.
AGENT_EVENTS: dict[str, dict[str, Field]] = {
    "hello": {"version": _int(), "pid": _int(), "agent_uid": _int(), "worker_uid": _int(),
              "python": _str(40), "languages": Field("strs", hi=10),
              "measure": _enum("cgroup2", "cgroup1", "proc", "none")},
    **_OUTPUT_EVENTS,
    "out": {"name": _enum(*STREAMS), "size": _int(MAX_TEXT)},
    "notice": {"text": _str(10_000)},
    **_COMM,
    "chunk": {"size": _int(CHUNK_BYTES)},
    "reply": {"status": _enum("ok", "error"), "body": Field("obj", hi=10_000, optional=True),
              "code": _str(20, optional=True), "message": _str(2000, optional=True)},
    "done": {"verdict": _enum(*VERDICTS), "duration_ms": _num(), "cpu_seconds": _num(),
             "peak_memory": _int(1 << 50), "state_lost": _BOOL, "message": _str(2000),
             "dropped_bytes": _int(1 << 50), "dropped_outputs": _int(1 << 40),
             "exit_signal": _str(20, nullable=True),
             "user_expressions": Field("obj", hi=100)},
    "exited": {"exit_code": _int(255, -1), "stdout": _str(MAX_TEXT), "stderr": _str(MAX_TEXT),
               "duration_ms": _num(), "timed_out": _BOOL, "interrupted": _BOOL,
               "oom_killed": _BOOL, "dropped_bytes": _int(1 << 50)},
}

_ENTRY = Field("obj", hi=10)
#: Reply bodies, by the request type they answer (the same on the worker channel).
REPLIES: dict[str, dict[str, Field]] = {
    "interrupt": {"delivered": _BOOL},
    "read": {"size": _int(MAX_TRANSFER)},
    "write": {"written": _int(MAX_TRANSFER)},
    "stage": {"written": _int(MAX_TRANSFER)},
    "list": {"entries": Field("objs", hi=10_000), "truncated": _BOOL},
    "stat": {"entry": _ENTRY},
    "delete": {}, "mkdir": {}, "restart": {}, "set_env": {}, "shutdown": {}, "cancel": {},
    "link": {},
    "stats": {"memory_usage": _int(1 << 50), "memory_limit": _int(1 << 50, nullable=True),
              "memory_peak": _int(1 << 50, nullable=True), "cpu_usage_ns": _int(1 << 62),
              "cpu_quota": _num(4096, nullable=True), "pids": _int(1 << 22),
              "pids_limit": _int(1 << 22, nullable=True), "oom_kills": _int(1 << 40),
              "taken_at": _num(1e11), "uptime": _num(1e9), "busy": _BOOL,
              "workers": Field("obj", hi=10), "measure": _enum("cgroup2", "cgroup1", "proc",
                                                                "none")},
    "complete": {"matches": Field("strs", hi=10_000), "cursor_start": _int(MAX_TEXT),
                 "cursor_end": _int(MAX_TEXT), "metadata": _MD},
    "inspect": {"found": _BOOL, "data": _BUNDLE, "metadata": _MD},
    "is_complete": {"status": _enum("complete", "incomplete", "invalid", "unknown"),
                    "indent": _str(100, optional=True)},
    "get_var": {"json": _str(MAX_TEXT)},
    "set_var": {},
    "sync": {},
    "comm_open": {}, "comm_msg": {}, "comm_close": {},
    "comm_info": {"comms": Field("strmap", hi=10_000)},  # comm_id -> target_name
}

#: agent -> worker (Python and Node). A `run` is followed by its pipes (SCM_RIGHTS) for
#: Python workers; `fds` says how many.
WORKER_REQUESTS: dict[str, dict[str, Field]] = {
    "run": {**_RUN_CELL, "fds": _int(3), "output_cap": _int(1 << 40, 1)},
    "input_reply": {"value": _str(1_000_000)},
    "complete": {"code": _str(MAX_TEXT), "cursor_pos": _int(MAX_TEXT)},
    "inspect": {"code": _str(MAX_TEXT), "cursor_pos": _int(MAX_TEXT), "detail_level": _int(1)},
    "is_complete": {"code": _str(MAX_TEXT)},
    "get_var": {"name": _str(128)},
    "set_var": {"name": _str(128), "json": _str(MAX_TEXT)},
    "set_env": {"env": Field("envmap", hi=1000)},
    "sync": {},
    **_COMM,
    "comm_info": {"target_name": _str(256, nullable=True)},
}

#: worker -> agent. Nothing here is trusted beyond being well-formed.
WORKER_EVENTS: dict[str, dict[str, Field]] = {
    **_OUTPUT_EVENTS,
    "out": {"name": _enum(*STREAMS), "size": _int(OUT_BYTES)},
    **_COMM,
    "ready": {"version": _str(40)},
    "reply": AGENT_EVENTS["reply"],
    "done": {"status": _enum("ok", "error"), "user_expressions": Field("obj", hi=100)},
}


def error_body(code: str, message: str) -> dict[str, str]:
    """The one error shape: an errno-style code and one sentence."""
    return {"code": code[:20], "message": message[:2000]}


def contract() -> dict[str, Any]:
    """The contract as plain JSON (for contract.json and the Node worker)."""

    def fields(spec: dict[str, dict[str, Field]]) -> dict[str, Any]:
        return {t: {n: {k: v for k, v in f._asdict().items() if v not in ((), False, 0)}
                    for n, f in fs.items()} for t, fs in spec.items()}

    return {
        "version": PROTOCOL_VERSION, "max_frame_bytes": MAX_FRAME_BYTES,
        "chunk_bytes": CHUNK_BYTES, "max_depth": MAX_DEPTH, "verdicts": list(VERDICTS),
        "worker_requests": fields(WORKER_REQUESTS), "worker_events": fields(WORKER_EVENTS),
        "replies": fields(REPLIES), "error": fields({"error": _ERROR})["error"],
    }


if __name__ == "__main__":
    print(json.dumps(contract(), indent=1, sort_keys=True))
