"""Cells in flight: deadlines, interrupts, the output cap, verdicts and the agent's figures.

The worker only says that it finished and whether the cell raised; wall time, CPU seconds,
peak memory and the verdict come from the agent's own clock, /proc and cgroup readings
(docs/architecture.md, "Who enforces what").
"""

from __future__ import annotations

import codecs
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from . import procs
from .frames import Frame
from .loop import Loop, sleep
from .measure import Meter, host_limits
from .protocol import COMM_EVENTS, OUTPUT_EVENTS
from .runstate import MESSAGES, Run
from .spawn import new_token
from .workers import Worker

TICK = 0.1
#: Without a cgroup (gVisor) the agent itself stops a cell's interpreter at this share of
#: the memory limit, looking this often: a tight allocation loop grows ~50 MB per tick.
GUARD_SHARE, GUARD_TICK = 0.9, 0.02
class Cells:
    """Runs cells on workers for one agent; the agent routes worker frames here."""

    def __init__(self, loop: Loop, send: Callable[[Frame], None], meter: Meter,
                 keep: Callable[[], procs.Spare]) -> None:
        self.send = send
        self.meter = meter
        self.keep = keep
        self.agent_pid = os.getpid()
        self.loop = loop
        self.runs: dict[Worker, Run] = {}
        self.last_memory = meter.memory_usage()

    def busy(self) -> bool:
        return bool(self.runs)

    def _cpu(self, run: Run, scan: bool) -> int:
        own = run.worker.stat.read()
        ticks = (own.cpu_ticks if own is not None else 0) + procs.children_ticks()
        if scan:
            ticks += sum(p.cpu_ticks for p in procs.started_since(
                self.agent_pid, run.start_tick, self.keep()) if p.pid != run.worker.pid)
        return ticks

    # ----- starting ------------------------------------------------------------------
    def start(self, req: Frame, worker: Worker) -> None:
        if worker in self.runs:
            self.send(self._done_frame(req["id"], "error", 0.0, message=(
                f"the {worker.kind} interpreter is busy with another cell")))
            return
        run = Run(id=req["id"], token=new_token(), worker=worker, timeout=req["timeout"],
                  cpu_budget=req["cpu_time"], cap=req["output_cap"], grace=req["grace"],
                  oom_base=self.meter.oom_kills())
        run.cpu_base = self._cpu(run, scan=False)
        self.runs[worker] = run
        run.timers.append(self.loop.call_later(run.timeout, self._on_deadline, run))
        run.tick_timer = self.loop.call_later(TICK, self._tick, run)
        limit = host_limits().get("memory") if self.meter.kind == "proc" else None
        if limit:
            run.guard_timer = self.loop.call_later(GUARD_TICK, self._guard, run, limit)
        keys = ("code", "execution_count", "allow_stdin", "silent", "store_history",
                "user_expressions", "output_cap")
        # The sync goes with the run: the worker's request loop answers it only once the
        # cell has returned, so a cell that forged `done` and went on is still running.
        worker.start_run({"id": run.token, "type": "run", **{k: req[k] for k in keys}},
                         {"id": run.sync, "type": "sync"})

    # ----- what the worker sends -------------------------------------------------------
    def on_frame(self, worker: Worker, frame: Frame) -> None:
        run = self.runs.get(worker)
        if run is not None and frame["type"] == "reply" and frame["id"] == run.sync:
            run.synced = True
            self._maybe_done(run)
            return
        if run is None or frame["id"] != run.token:
            return  # a finished cell's, or forged: never shown as this cell's
        ftype = frame["type"]
        if ftype == "done" and run.claimed is None:
            run.claimed = frame
            self._maybe_done(run)
        elif ftype in OUTPUT_EVENTS:
            if ftype == "error" and run.verdict in MESSAGES and \
                    frame["ename"] == "KeyboardInterrupt":
                frame = {"type": "error", "ename": "TimeoutError", "evalue": run.message(),
                         "traceback": [f"TimeoutError: {run.message()}"]}
            self._emit(run, {**frame, "id": run.id})
        elif ftype in COMM_EVENTS:  # in order with the cell's output; the host caps them
            self.send({**frame, "id": run.id})

    def _maybe_done(self, run: Run) -> None:
        """The cell ended: its worker said so, and then answered the sync after it."""
        done = run.claimed
        if done is not None and run.synced:
            self._finish(run, done["status"], user_expressions=done["user_expressions"])

    def on_output(self, worker: Worker, name: str, data: bytes) -> None:
        run = self.runs.get(worker)
        if run is None:
            return
        decoder = run.decoders.setdefault(name, codecs.getincrementaldecoder("utf-8")("replace"))
        text = decoder.decode(data)
        if text:
            self._emit(run, {"id": run.id, "type": "stream", "name": name, "text": text})

    def _emit(self, run: Run, frame: Frame) -> None:
        """Forward within the cell's output cap; streams are cut exactly at the cap, and a
        rich output counts its data (the host's policy trims metadata and counts again)."""
        room = run.cap - run.used
        if frame["type"] == "stream":
            text = frame["text"]
            if len(text) > room:
                run.dropped += len(text) - max(room, 0)
                if room <= 0:
                    return
                frame = {**frame, "text": text[:room]}
            run.used += len(frame["text"])
            self.send(frame)
            return
        size = _data_size(frame.get("data"))
        if frame["type"] in ("display", "result", "payload") and size > room:
            run.dropped_outputs += 1
            return
        run.used += size
        self.send(frame)

    # ----- limits -----------------------------------------------------------------------
    def _tick(self, run: Run) -> None:
        if self.runs.get(run.worker) is not run:
            return
        run.tick_timer = self.loop.call_later(TICK, self._tick, run)
        cpu = (self._cpu(run, scan=True) - run.cpu_base) / procs.CLK_TCK
        if run.verdict is None and cpu > run.cpu_budget:
            run.verdict = "cpu_time"
            self._interrupt(run, run.grace)
        sample = self.meter.sample()
        self.last_memory = sample.memory_usage
        run.peak = max(run.peak, sample.memory_usage)
        limit = sample.memory_limit
        if limit and not run.warned and sample.memory_usage > 0.9 * limit:
            run.warned = True
            self.send({"id": run.id, "type": "notice", "text": (
                f"[sandbox] warning: this cell is using "
                f"{100 * sample.memory_usage / limit:.0f}% of the {limit // 2**20} MB memory "
                "limit")})

    def _guard(self, run: Run, limit: int) -> None:
        """With no cgroup to pick a victim, the interpreter goes before the runtime kills
        the whole sandbox."""
        if self.runs.get(run.worker) is not run:
            return
        if self.meter.memory_usage() > GUARD_SHARE * limit:
            run.out_of_memory = True
            run.worker.kill()
            return
        run.guard_timer = self.loop.call_later(GUARD_TICK, self._guard, run, limit)

    def _on_deadline(self, run: Run) -> None:
        if self.runs.get(run.worker) is run and run.verdict is None:
            run.verdict = "timeout"
            self._interrupt(run, run.grace)

    def _interrupt(self, run: Run, grace: float) -> None:
        """SIGINT now (KeyboardInterrupt, state kept); SIGKILL after `grace` if ignored."""
        run.worker.signal(signal.SIGINT)
        if run.kill_timer is None:
            run.kill_timer = self.loop.call_later(grace, self._kill, run)
            run.timers.append(run.kill_timer)

    def _kill(self, run: Run) -> None:
        if self.runs.get(run.worker) is run:
            run.worker.kill()  # its exit comes back through on_exit

    def interrupt(self, target: int | None, grace: float) -> bool:
        """SIGINT a cell, unless the agent is already ending it for a limit: the host's own
        overdue interrupt must not break the traceback the first SIGINT is formatting."""
        for run in self.runs.values():
            if target is None or run.id == target:
                if run.verdict is None:
                    run.interrupted = True
                    self._interrupt(run, grace)
                return True
        return False

    # ----- ending ----------------------------------------------------------------------
    def on_exit(self, worker: Worker, status: int, heap_oom: bool) -> None:
        """The worker died: its cell ends with the verdict the agent can prove."""
        run = self.runs.get(worker)
        if run is None:
            return
        oom = self.meter.oom_kills() > run.oom_base or heap_oom or run.out_of_memory
        verdict = "oom" if oom else run.verdict or ("interrupted" if run.interrupted
                                                     else "crashed")
        sig = -status if status < 0 else None
        self._finish(run, "error", verdict=verdict, state_lost=True,
                     exit_signal=signal.Signals(sig).name if sig else None,
                     message=worker.kill_reason if verdict == "crashed" else "")

    def _finish(self, run: Run, status: str, *, verdict: str | None = None,
                state_lost: bool = False, exit_signal: str | None = None, message: str = "",
                user_expressions: dict[str, Any] | None = None) -> None:
        run.worker.drain()
        for timer in [*run.timers, run.tick_timer, run.guard_timer]:
            if timer is not None:
                timer.cancel()
        del self.runs[run.worker]
        run.worker.retire()
        self.loop.call_soon(run.worker.prepare)  # after `done` has gone to the host
        wall = time.monotonic() - run.started
        scan = wall >= 0.05 and not state_lost
        cpu = max(0, self._cpu(run, scan) - run.cpu_base) / procs.CLK_TCK if not state_lost \
            else None
        if wall >= 0.02:
            self.last_memory = self.meter.memory_usage()
        run.peak = max(run.peak, self.last_memory)
        verdict = verdict or run.verdict or ("interrupted" if run.interrupted and
                                             status == "error" else status)
        done = self._done_frame(run.id, verdict, wall, cpu=cpu, peak=run.peak,
                                state_lost=state_lost, dropped=run.dropped,
                                dropped_outputs=run.dropped_outputs, exit_signal=exit_signal,
                                message=message or run.message(),
                                user_expressions=user_expressions or {})
        if verdict in ("ok", "error") and not state_lost:
            self.send(done)
            return
        first = [p.pid for p in procs.started_since(self.agent_pid, run.start_tick, self.keep())]
        procs.kill_all(first)
        self.loop.create_task(self._done_after_sweep(run.start_tick, first, done))

    async def _done_after_sweep(self, since_tick: int, killed: list[int], done: Frame) -> None:
        """Whatever the cell started is gone, and reaped (until then it counts against the
        pids limit), before the host hears that the cell ended; a few more rounds catch
        what was forking meanwhile."""
        killed = killed + await self.sweep(since_tick)
        await procs.reaped(killed)
        self.send(done)

    @staticmethod
    def _done_frame(rid: int, verdict: str, wall: float, *, cpu: float | None = None,
                    peak: int = 0, state_lost: bool = False, dropped: int = 0,
                    dropped_outputs: int = 0, exit_signal: str | None = None, message: str = "",
                    user_expressions: dict[str, Any] | None = None) -> Frame:
        return {"id": rid, "type": "done", "verdict": verdict,
                "duration_ms": round(wall * 1000, 3), "cpu_seconds": cpu or 0.0,
                "peak_memory": peak, "state_lost": state_lost, "message": message,
                "dropped_bytes": dropped, "dropped_outputs": dropped_outputs,
                "exit_signal": exit_signal,
                "user_expressions": user_expressions or {}}

    async def sweep(self, since_tick: int) -> list[int]:
        """Kill every process started since `since_tick` except the workers, in rounds."""
        killed: list[int] = []
        for _ in range(20):
            found = [p.pid for p in procs.started_since(self.agent_pid, since_tick, self.keep())]
            if not found:
                break
            procs.kill_all(found)
            killed += found
            await sleep(0.01)
        return killed


def _data_size(data: Any) -> int:
    """Characters of a bundle's values, as the host's budget counts them."""
    if not isinstance(data, dict):
        return 0
    return sum(len(v) if isinstance(v, str) else len(json.dumps(v)) for v in data.values())
