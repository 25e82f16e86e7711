"""The agent: the container's main process, speaking NDJSON frames on stdin/stdout.

One single-threaded event loop multiplexes host requests, interpreter workers and shell
commands. It owns every verdict (timeout, CPU budget, OOM, crash) so that a worker dying,
hanging or ignoring SIGINT never takes the session down. EOF on stdin means the host is
gone: everything is killed and the container exits (and Docker removes it).
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import select
import selectors
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from . import files, procs, protocol
from .cgroup import Cgroup
from .workers import Command, Run, Worker, node_worker_argv, python_worker_argv, widen_pipe

WORKDIR = "/sandbox" if os.path.isdir("/sandbox") else os.getcwd()
TICK = 0.1
DEFAULT_GRACE = 3.0
MAX_TRANSFER = 1 << 30
_VERDICT_MESSAGES = {
    "timeout": "cell timed out after {t} s",
    "cpu_time": "cell used its {c} s CPU-time budget",
}


def _num(value: Any, lo: float, hi: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if math.isnan(value) or value < lo or value > hi:
        return None
    return float(value)


def read_ready(fd: int, size: int = 1 << 20) -> bytes | None:
    """A non-blocking read: the bytes, b"" at end of file (or error), None if nothing yet."""
    try:
        return os.read(fd, size)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _float_env(name: str) -> float | None:
    try:
        return float(os.environ.get(name, ""))
    except ValueError:
        return None


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "?"
    return str(int(value)) if value == int(value) else f"{value:g}"


class Supervisor:
    def __init__(self, argv_for: dict[str, Callable[[], list[str]]] | None = None) -> None:
        self.sel = selectors.DefaultSelector()
        self.cgroup = Cgroup()
        self.started = time.monotonic()
        self.requests = protocol.LineBuffer()
        self.stopping = False
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SANDBOX_AGENT")}
        self.argv_for = argv_for or {
            "python": python_worker_argv,
            "node": lambda: node_worker_argv(self.cgroup.sample().memory_limit),
        }
        self.workers: dict[str, Worker] = {}
        self.commands: dict[int, Command] = {}
        self.pending: dict[int, str] = {}  # request id -> worker kind awaiting a reply
        self.next_sample = 0.0
        claim = _num(_float_env("SANDBOX_AGENT_CLAIM_TIMEOUT"), 1, 10**7)
        self.claim_deadline = time.monotonic() + claim if claim else None
        self.oom_seen = self.cgroup.oom_kills()  # refreshed by samples and after deaths
        self.last_memory = self.cgroup.memory_usage()

    # ----- output to the host -------------------------------------------------------------
    def send(self, frame: dict[str, Any]) -> None:
        self.send_raw(protocol.encode(frame))

    def send_raw(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(1, view) :]
            except BlockingIOError:
                time.sleep(0.001)
            except BrokenPipeError:
                self.stopping = True
                return

    def reply(self, rid: int, **content: Any) -> None:
        content.setdefault("status", "ok")
        self.send({"id": rid, "type": "reply", "content": content})

    def fail(self, rid: int, code: str, message: str) -> None:
        self.reply(rid, status="error", code=code, message=message)

    def log(self, message: str) -> None:
        try:
            os.write(2, (message.replace("\n", " ")[:2000] + "\n").encode("utf-8", "replace"))
        except OSError:
            pass

    # ----- workers -------------------------------------------------------------------------
    def worker(self, kind: str) -> Worker:
        w = self.workers.get(kind)
        if w is None or w.exited:
            w = Worker.spawn(kind, self.argv_for[kind](), self.env, WORKDIR)
            self.workers[kind] = w
            self.sel.register(w.ev_r, selectors.EVENT_READ, (self.on_worker_events, w))
            for fd in w.output_fds():
                self.sel.register(fd, selectors.EVENT_READ, (self.on_worker_output, w))
            if w.pidfd is not None:
                self.sel.register(w.pidfd, selectors.EVENT_READ, (self.on_worker_exit, w))
        return w

    def to_worker(self, w: Worker, frame: dict[str, Any]) -> None:
        first = not w.outbox
        w.outbox += protocol.encode(frame)
        if first:
            self.flush_outbox(w)

    def flush_outbox(self, w: Worker) -> None:
        try:
            del w.outbox[: os.write(w.req_w, w.outbox)]
        except BlockingIOError:
            pass
        except OSError:
            w.outbox.clear()
        registered = w.req_w in self.sel.get_map()
        if w.outbox and not registered:
            self.sel.register(w.req_w, selectors.EVENT_WRITE, (self.on_worker_writable, w))
        elif not w.outbox and registered:
            self.sel.unregister(w.req_w)

    def on_worker_writable(self, fd: int, w: Worker) -> None:
        self.flush_outbox(w)

    def on_worker_events(self, fd: int, w: Worker) -> None:
        data = read_ready(fd)
        if data is None:
            return
        if not data:
            self.sel.unregister(fd)
            if w.pidfd is None:
                self.worker_gone(w)
            return
        try:
            lines = w.events.feed(data)
        except protocol.FrameError:
            self.log(f"{w.kind} worker sent an oversized frame; restarting it")
            w.kill()
            return
        for line in lines:
            self.on_worker_frame(w, line)

    def on_worker_frame(self, w: Worker, line: bytes) -> None:
        run = w.run
        if run is not None and line.startswith(b'{"id":%d,"type":"stream",' % run.id):
            self.send_raw(line)  # the hot path of big outputs: no need to parse it here
            return
        try:
            frame = protocol.decode(line, protocol.EVENT_TYPES)
        except protocol.FrameError as exc:
            self.log(f"{w.kind} worker: {exc}")
            return
        ftype = frame["type"]
        if ftype == "log":
            w.ready = True
            self.log(f"{w.kind} worker: {str(frame.get('message'))[:200]}")
            return
        if ftype == "reply":
            if self.pending.pop(frame["id"], None) is not None:
                self.send_raw(line)
            return
        run = w.run
        if run is None or frame["id"] != run.id:
            if ftype == "stream" and w.last_run_id:
                frame["id"] = w.last_run_id
                self.send(frame)
            return
        if ftype == "done":
            self.finish_run(w, run, frame)
            return
        if ftype == "error" and run.verdict in _VERDICT_MESSAGES and \
                frame.get("ename") == "KeyboardInterrupt":
            frame["ename"] = "TimeoutError"
            frame["evalue"] = self.verdict_message(run)
            frame["traceback"] = [f"TimeoutError: {frame['evalue']}"]
            self.send(frame)
            return
        self.send_raw(line)

    def on_worker_output(self, fd: int, w: Worker) -> None:
        self.drain_output(fd, w)

    def drain_output(self, fd: int, w: Worker) -> None:
        name = w.output_fds().get(fd, "stdout")
        while True:
            data = read_ready(fd, 65536)
            if data is None:
                return
            if not data:
                try:
                    self.sel.unregister(fd)
                except (KeyError, ValueError):
                    pass
                return
            if name == "stderr":
                w.stderr_tail += data
                del w.stderr_tail[:-4096]
            text = w.decoders[fd].decode(data)
            rid = w.run.id if w.run else w.last_run_id
            if not text or not rid:
                continue
            if w.run is not None:
                room = w.run.output_cap - w.run.fd_chars
                if room <= 0:
                    w.run.fd_dropped += len(text)
                    continue
                if len(text) > room:
                    w.run.fd_dropped += len(text) - room
                    text = text[:room]
                w.run.fd_chars += len(text)
            self.send({"id": rid, "type": "stream", "name": name, "text": text})

    def on_worker_exit(self, fd: int, w: Worker) -> None:
        self.worker_gone(w)

    def worker_gone(self, w: Worker) -> None:
        if w.exited:
            return
        w.exited = True
        for fd in list(w.output_fds()):
            self.drain_output(fd, w)
        # Pick up any frames (the final `done`, if it made it) before judging the exit.
        try:
            self.sel.get_key(w.ev_r)
            self.on_worker_events(w.ev_r, w)
        except (KeyError, ValueError):
            pass
        try:
            status = w.proc.wait(timeout=2)
        except Exception:  # noqa: BLE001
            w.kill()
            status = w.proc.wait()
        for maybe_fd in [w.ev_r, w.req_w, w.pidfd, *w.output_fds()]:
            if maybe_fd is not None:
                try:
                    self.sel.unregister(maybe_fd)
                except (KeyError, ValueError):
                    pass
        w.close()
        run = w.run
        w.run = None
        for rid, kind in list(self.pending.items()):
            if kind == w.kind:
                del self.pending[rid]
                self.fail(rid, "EPIPE", f"the {w.kind} interpreter restarted; try again")
        if self.workers.get(w.kind) is w:
            del self.workers[w.kind]
        if run is not None:
            self.oom_seen = self.cgroup.oom_kills()
            oom = self.oom_seen > run.oom_start or b"heap out of memory" in w.stderr_tail
            verdict = "oom" if oom else run.verdict or ("interrupted" if run.killed else "crashed")
            sig = -status if status < 0 else None
            self.send(self.done_frame(w, run, verdict, "error", state_lost=True,
                                      exit_signal=signal.Signals(sig).name if sig else None,
                                      exit_code=status if status >= 0 else None))
            procs.kill_tagged(f"cell-{run.id}")
        if not self.stopping:
            self.worker(w.kind)  # respawn at once so the next cell does not wait

    # ----- cells ---------------------------------------------------------------------------
    def verdict_message(self, run: Run) -> str:
        return _VERDICT_MESSAGES.get(run.verdict or "", "").format(
            t=_fmt_s(run.timeout_s), c=_fmt_s(run.cpu_s))

    def done_frame(self, w: Worker, run: Run, verdict: str, status: str,
                   **extra: Any) -> dict[str, Any]:
        now = time.monotonic()
        frame: dict[str, Any] = {
            "id": run.id, "type": "done", "status": status, "verdict": verdict,
            "duration_ms": round((now - run.started) * 1000, 3),
            "cpu_seconds": None,
            "peak_memory": run.peak_memory,
            "dropped_chars": run.fd_dropped,
            "state_lost": False,
        }
        if verdict in _VERDICT_MESSAGES:
            frame["message"] = self.verdict_message(run)
        frame.update(extra)
        return frame

    def start_run(self, req: dict[str, Any]) -> None:
        lang = req.get("lang", "python")
        if lang not in self.argv_for:
            self.send({"id": req["id"], "type": "done", "status": "error", "verdict": "error",
                       "message": f"unknown language {str(lang)[:40]!r}"})
            return
        w = self.worker(lang)
        if w.run is not None:
            self.send({"id": req["id"], "type": "done", "status": "error", "verdict": "error",
                       "message": "the interpreter is busy with another cell"})
            return
        timeout = _num(req.get("timeout"), 0.001, 10**7)
        cpu = _num(req.get("cpu_time"), 0.001, 10**7)
        cap = req.get("output_cap")
        cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else 1 << 62
        now = time.monotonic()
        run = Run(id=req["id"], started=now, deadline=now + timeout if timeout else None,
                  cpu_budget=cpu, oom_start=self.oom_seen, output_cap=cap, timeout_s=timeout,
                  cpu_s=cpu)
        w.run = run
        w.last_run_id = run.id
        fwd: dict[str, Any] = {k: req[k] for k in (
            "id", "type", "code", "silent", "store_history", "allow_stdin", "execution_count",
            "output_cap", "user_expressions") if k in req}
        self.to_worker(w, fwd)

    def finish_run(self, w: Worker, run: Run, frame: dict[str, Any]) -> None:
        pending, _, _ = select.select(list(w.output_fds()), [], [], 0)
        for fd in pending:  # fd-level output written before `done` goes out before it
            self.drain_output(fd, w)
        w.run = None
        if not run.peak_memory:
            # A cell shorter than one tick was never sampled: read now unless it was so short
            # that the last reading (at most one cell old) says as much, and costs nothing.
            if time.monotonic() - run.started >= 0.02:
                self.last_memory = self.cgroup.memory_usage()
            run.peak_memory = self.last_memory
        status = "error" if frame.get("status") != "ok" else "ok"
        verdict = run.verdict or ("interrupted" if run.interrupted and status == "error"
                                  else status)
        dropped = run.fd_dropped + int(frame.get("dropped_chars") or 0)
        extra: dict[str, Any] = {"dropped_chars": dropped}
        if frame.get("internal"):
            extra["internal"] = str(frame["internal"])[:500]
        if isinstance(frame.get("user_expressions"), dict):
            extra["user_expressions"] = frame["user_expressions"]
        cpu = _num(frame.get("cpu_seconds"), 0, 10**9)
        if cpu is not None:
            extra["cpu_seconds"] = round(cpu, 3)
        self.send(self.done_frame(w, run, verdict, status, **extra))
        if run.verdict or run.interrupted:
            procs.kill_tagged(f"cell-{run.id}", exclude=frozenset({w.pid}))

    def interrupt(self, req: dict[str, Any]) -> None:
        target = req.get("target")
        grace = _num(req.get("grace"), 0, 600)
        grace = DEFAULT_GRACE if grace is None else grace
        for w in self.workers.values():
            if w.run is not None and (target is None or w.run.id == target):
                w.run.interrupted = True
                self.escalate(w, w.run, grace)
                self.reply(req["id"], delivered=True)
                return
        for c in self.commands.values():
            if target is None or c.id == target:
                c.interrupted = True
                c.kill_all()
                self.reply(req["id"], delivered=True)
                return
        self.reply(req["id"], delivered=False)

    def escalate(self, w: Worker, run: Run, grace: float) -> None:
        """SIGINT now (KeyboardInterrupt, state kept); SIGKILL after `grace` if ignored."""
        try:
            os.kill(w.pid, signal.SIGINT)
        except OSError:
            pass
        kill_at = time.monotonic() + grace
        run.kill_at = kill_at if run.kill_at is None else min(run.kill_at, kill_at)

    def tick(self) -> None:
        """Deadlines on every loop pass; cgroup and CPU sampling at most every TICK."""
        now = time.monotonic()
        sample_due = now >= self.next_sample
        if sample_due:
            self.next_sample = now + TICK
        for w in list(self.workers.values()):
            run = w.run
            if run is None:
                continue
            if run.kill_at is not None and now >= run.kill_at and not run.killed:
                run.killed = True
                w.kill()
                continue
            if run.deadline is not None and now >= run.deadline and run.verdict is None:
                run.verdict = "timeout"
                self.escalate(w, run, DEFAULT_GRACE)
            if sample_due:
                self.sample_run(w, run)

    def sample_run(self, w: Worker, run: Run) -> None:
        """CPU budget, peak memory and the one-time 90% memory warning for a running cell."""
        cpu_now = procs.cpu_seconds(w.pid)
        if run.cpu_start is None:  # first tick: count the time since the start as busy
            run.cpu_start = cpu_now - (time.monotonic() - run.started)
        if (run.cpu_budget is not None and run.verdict is None
                and cpu_now - run.cpu_start > run.cpu_budget):
            run.verdict = "cpu_time"
            self.escalate(w, run, DEFAULT_GRACE)
        sample = self.cgroup.sample()
        self.oom_seen = sample.oom_kills
        self.last_memory = sample.memory_usage
        run.peak_memory = max(run.peak_memory, sample.memory_usage)
        limit = sample.memory_limit
        if limit and not run.warned_memory and sample.memory_usage > 0.9 * limit:
            run.warned_memory = True
            pct = 100 * sample.memory_usage / limit
            self.send({"id": run.id, "type": "stream", "name": "stderr",
                       "text": f"[sandbox] warning: this cell is using {pct:.0f}% of the "
                               f"{limit // 2**20} MB memory limit\n"})

    def tick_commands(self, now: float) -> None:
        for c in list(self.commands.values()):
            if c.deadline is not None and now >= c.deadline and not c.timed_out:
                c.timed_out = True
                c.kill_all()
            if c.pidfd is None and c.exit_status is None:
                self.poll_command(c)
            self.maybe_finish_command(c)
        for w in list(self.workers.values()):
            if w.pidfd is None and w.proc.poll() is not None:
                self.worker_gone(w)

    # ----- shell commands ------------------------------------------------------------------
    def start_command(self, req: dict[str, Any]) -> None:
        argv = req.get("argv")
        command = req.get("command")
        if isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv):
            pass
        elif isinstance(command, str):
            argv = ["/bin/sh", "-c", command]
        else:
            self.send({"id": req["id"], "type": "done", "exit_code": -1, "stdout": "",
                       "stderr": "exec needs a command string or an argv list",
                       "timed_out": False, "oom_killed": False, "duration_ms": 0})
            return
        timeout = _num(req.get("timeout"), 0.001, 10**7)
        cap = req.get("output_cap")
        cap = cap if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0 else 1 << 24
        env = dict(self.env)
        extra = req.get("env")
        if isinstance(extra, dict):
            env.update({k: v for k, v in extra.items() if isinstance(k, str) and
                        isinstance(v, str) and "=" not in k and "\0" not in k + v})
        try:
            c = Command.spawn(req["id"], argv, env, WORKDIR, timeout, cap,
                              bool(req.get("stream")), self.oom_seen)
        except OSError as exc:
            self.send({"id": req["id"], "type": "done", "exit_code": 127, "stdout": "",
                       "stderr": f"{argv[0]}: {exc.strerror}", "timed_out": False,
                       "oom_killed": False, "duration_ms": 0})
            return
        self.commands[c.id] = c
        for fd in c.open_fds:
            self.sel.register(fd, selectors.EVENT_READ, (self.on_command_output, c))
        if c.pidfd is not None:
            self.sel.register(c.pidfd, selectors.EVENT_READ, (self.on_command_exit, c))

    def on_command_output(self, fd: int, c: Command) -> None:
        data = read_ready(fd, 65536)
        if data is None:
            return
        if not data:
            self.sel.unregister(fd)
            c.open_fds.discard(fd)
            self.maybe_finish_command(c)
            return
        buf = c.out[fd]
        room = c.cap - len(buf)
        if room < len(data):
            c.dropped += len(data) - max(room, 0)
        if room > 0:
            buf += data[:room]
        if c.stream:
            text = c.decoders[fd].decode(data[: max(room, 0)])
            if text:
                self.send({"id": c.id, "type": "stream", "name": c.names[fd], "text": text})

    def on_command_exit(self, fd: int, c: Command) -> None:
        self.sel.unregister(fd)
        self.poll_command(c)
        self.maybe_finish_command(c)

    def poll_command(self, c: Command) -> None:
        try:
            pid, status = os.waitpid(c.proc.pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = c.proc.pid, 0
        if pid:
            c.exit_status = status
            c.exited_at = time.monotonic()
            c.proc.returncode = os.waitstatus_to_exitcode(status)

    def maybe_finish_command(self, c: Command) -> None:
        if c.exit_status is None or c.id not in self.commands:
            return
        # Background children may hold the pipes open; give them a moment, then end it.
        if c.open_fds and time.monotonic() - (c.exited_at or 0) < 0.05:
            return
        del self.commands[c.id]
        for fd in list(c.open_fds):
            self.on_command_output(fd, c)
            if fd in c.open_fds:
                self.sel.unregister(fd)
        c.kill_all()
        if c.pidfd is not None:
            try:
                self.sel.unregister(c.pidfd)
            except (KeyError, ValueError):
                pass
            os.close(c.pidfd)
        for s in (c.proc.stdout, c.proc.stderr):
            if s is not None:
                s.close()
        self.oom_seen = self.cgroup.oom_kills()
        frame = {"id": c.id, "type": "done", **c.result(self.oom_seen)}
        self.send(frame)

    # ----- files ---------------------------------------------------------------------------
    def file_op(self, req: dict[str, Any]) -> None:
        rid = req["id"]
        op = req.get("op")
        path = req.get("path")
        cap = _num(req.get("max_bytes"), 0, MAX_TRANSFER)
        max_bytes = int(cap) if cap is not None else 256 * 2**20
        try:
            if not isinstance(path, str):
                raise files.FileOpError("EINVAL", "a path is required")
            if op == "read":
                fd, size = files.open_regular(path, max_bytes)
                total = 0
                for chunk in files.read_chunks(fd, size, max_bytes, protocol.FILE_CHUNK_BYTES):
                    total += len(chunk)
                    self.send({"id": rid, "type": "data",
                               "b64": base64.b64encode(chunk).decode("ascii")})
                self.reply(rid, size=total)
            elif op == "write":
                try:
                    data = base64.b64decode(str(req.get("b64", "")), validate=True)
                except (binascii.Error, ValueError):
                    raise files.FileOpError("EINVAL", "content is not valid base64") from None
                n = files.write_bytes(path, data, bool(req.get("append")),
                                      bool(req.get("parents")))
                self.reply(rid, written=n)
            elif op == "list":
                entries, truncated = files.list_dir(path)
                self.reply(rid, entries=entries, truncated=truncated)
            elif op == "stat":
                self.reply(rid, entry=files.stat_path(path))
            elif op == "delete":
                files.delete(path, bool(req.get("recursive")))
                self.reply(rid)
            elif op == "mkdir":
                files.mkdir(path, bool(req.get("parents")))
                self.reply(rid)
            else:
                raise files.FileOpError("EINVAL", f"unknown file operation {str(op)[:20]!r}")
        except files.FileOpError as exc:
            self.fail(rid, exc.code, exc.message)
        except OSError as exc:
            self.fail(rid, "EIO", f"{path}: {exc.strerror or exc}")

    # ----- requests ------------------------------------------------------------------------
    def on_stdin(self, fd: int, _: object) -> None:
        data = read_ready(fd)
        if data is None:
            return
        if not data:
            self.stopping = True
            return
        try:
            lines = self.requests.feed(data)
        except protocol.FrameError:
            self.log("oversized request from the host; dropped")
            return
        for line in lines:
            try:
                req = protocol.decode(line, protocol.REQUEST_TYPES)
            except protocol.FrameError as exc:
                self.log(f"bad request: {exc}")
                continue
            try:
                self.handle(req)
            except Exception as exc:  # noqa: BLE001 - never die on one request
                self.log(f"request {req['type']} failed: {type(exc).__name__}: {exc}")
                self.fail(req["id"], "EAGENT", f"{type(exc).__name__}: {exc}")

    def handle(self, req: dict[str, Any]) -> None:
        rtype = req["type"]
        rid = req["id"]
        if rtype == "hello":
            self.claim_deadline = None
            self.send({"id": rid, "type": "hello", "version": protocol.PROTOCOL_VERSION,
                       "pid": os.getpid(), "uid": os.getuid(),
                       "python": sys.version.split()[0], "languages": sorted(self.argv_for)})
        elif rtype == "run":
            self.start_run(req)
        elif rtype == "input_reply":
            for w in self.workers.values():
                if w.run is not None and w.run.id == rid:
                    self.to_worker(w, req)
        elif rtype in ("complete", "inspect", "is_complete", "get_var", "set_var"):
            w = self.worker(str(req.get("lang", "python")) if req.get("lang") in self.argv_for
                            else "python")
            if w.run is not None:
                self.fail(rid, "EBUSY", "the interpreter is busy running a cell")
                return
            self.pending[rid] = w.kind
            self.to_worker(w, req)
        elif rtype == "interrupt":
            self.interrupt(req)
        elif rtype == "exec":
            self.start_command(req)
        elif rtype == "fs":
            self.file_op(req)
        elif rtype == "stats":
            s = self.cgroup.sample()
            self.reply(rid, **s.as_dict(), uptime=time.monotonic() - self.started,
                       workers={k: w.pid for k, w in self.workers.items()},
                       busy=any(w.run is not None for w in self.workers.values()))
        elif rtype == "restart":
            kind = req.get("lang", "python")
            current = self.workers.get(kind) if isinstance(kind, str) else None
            if current is not None:
                current.kill()
                self.worker_gone(current)
            elif kind in self.argv_for:
                self.worker(kind)
            self.reply(rid)
        elif rtype == "set_env":
            env = req.get("env")
            if not isinstance(env, dict):
                self.fail(rid, "EINVAL", "env must be an object")
                return
            for k, v in env.items():
                if isinstance(k, str) and isinstance(v, str):
                    self.env[k] = v
                elif isinstance(k, str) and v is None:
                    self.env.pop(k, None)
            for w in self.workers.values():
                self.to_worker(w, {"id": 0, "type": "set_env", "env": env})
            self.reply(rid)
        elif rtype == "shutdown":
            self.reply(rid)
            self.stopping = True

    # ----- loop ----------------------------------------------------------------------------
    def run_forever(self) -> None:
        os.set_blocking(0, False)
        widen_pipe(1)
        self.sel.register(0, selectors.EVENT_READ, (self.on_stdin, None))
        prestart = os.environ.get("SANDBOX_AGENT_PRESTART", "python")
        for kind in prestart.split(","):
            if kind in self.argv_for:
                self.worker(kind)
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stopping", True))
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        while not self.stopping:
            busy = self.commands or any(w.run for w in self.workers.values())
            for key, _ in self.sel.select(TICK if busy else 1.0):
                callback, arg = key.data
                callback(key.fd, arg)
                if self.stopping:
                    break
            self.tick()
            self.tick_commands(time.monotonic())
            if self.claim_deadline is not None and time.monotonic() > self.claim_deadline:
                self.log("pooled sandbox was never claimed; exiting")
                self.stopping = True
        self.shutdown()

    def shutdown(self) -> None:
        for w in list(self.workers.values()):
            w.kill()
        for c in list(self.commands.values()):
            c.kill_all()


def main() -> None:
    try:
        with open("/tmp/.sandbox-agent.pid", "w") as f:
            f.write(str(os.getpid()))
    except OSError:
        pass
    Supervisor().run_forever()
