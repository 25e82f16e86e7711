"""The agent over the real contract, as the library sees it: cells, verdicts and figures."""

from __future__ import annotations

import ast
import time
import uuid
from typing import Any

import pytest

from sandbox_kernel.errors import FileOperationError, UsageError

from .conftest import run, text


def test_python_state_output_result_and_errors(shared: Any) -> None:
    r, ev = run(shared, "x = 40\nprint('out')\nimport sys; print('err', file=sys.stderr)\nx + 2")
    assert r.verdict == "ok" and not r.state_lost
    assert text(ev) == "out\n" and text(ev, "stderr") == "err\n"
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == ["42"]
    r, ev = run(shared, "1 / 0")
    assert r.verdict == "error"
    (err,) = [e for e in ev if e["type"] == "error"]
    assert err["ename"] == "ZeroDivisionError" and err["traceback"]
    r, ev = run(shared, "x")
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == ["40"]


def test_top_level_await_async_for_and_async_with(shared: Any) -> None:
    code = ("import asyncio, contextlib\n"
            "async def gen():\n    yield 1\n    yield 2\n"
            "@contextlib.asynccontextmanager\nasync def ctx():\n    yield 3\n"
            "got = [x async for x in gen()]\n"
            "async with ctx() as c:\n    got.append(c)\n"
            "await asyncio.sleep(0) or got")
    r, ev = run(shared, code)
    assert r.ok, ev
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == ["[1, 2, 3]"]
    r, ev = run(shared, "'await and async in a string'")
    assert r.ok
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == [
        "'await and async in a string'"]


def test_every_cell_gets_fresh_pipes(shared: Any) -> None:
    """The pipes made between cells are the next cell's own: each cell writes on new ones."""
    code = "import os; print(os.fstat(1).st_ino)"
    seen = {text(run(shared, code)[1]) for _ in range(3)}
    assert len(seen) == 3


def test_rich_display_and_fd_level_output(shared: Any) -> None:
    r, ev = run(shared, "from IPython.display import display, HTML\ndisplay(HTML('<b>b</b>'))\n"
                        "import os; os.system('echo from-a-child')")
    assert r.ok
    assert [e["data"]["text/html"] for e in ev if e["type"] == "display"] == ["<b>b</b>"]
    assert "from-a-child\n" in text(ev)


def test_figures_are_measured_by_the_agent(shared: Any) -> None:
    r, _ = run(shared, "import time\nhog = b'x' * (120 << 20)\nt = time.process_time()\n"
                       "while time.process_time() - t < 0.4:\n    pass\ndel hog")
    assert r.ok
    assert r.cpu_seconds is not None and r.cpu_seconds >= 0.35
    assert r.peak_memory >= 120 << 20
    assert r.duration_ms >= 400


def test_input_is_asked_and_answered(shared: Any) -> None:
    events: list[dict[str, Any]] = []
    holder: dict[str, Any] = {}

    def on_event(e: dict[str, Any]) -> None:
        events.append(e)
        if e["type"] == "input_request":
            holder["run"].send_input("typed")

    holder["run"] = shared.run("v = input('name? ')\nprint('got', v)", on_event,
                               allow_stdin=True)
    assert holder["run"].wait(30).ok
    assert [e["prompt"] for e in events if e["type"] == "input_request"] == ["name? "]
    assert text(events) == "got typed\n"
    r, ev = run(shared, "input()")
    assert r.verdict == "error" and "StdinNotImplementedError" in str(ev)


def test_interrupt_keeps_state(shared: Any) -> None:
    run(shared, "kept = 'yes'")
    events: list[dict[str, Any]] = []
    started = time.monotonic()
    cell = shared.run("import time\nprint('sleeping', flush=True)\ntime.sleep(30)",
                      events.append)
    while "sleeping" not in text(events) and time.monotonic() - started < 10:
        time.sleep(0.01)
    assert cell.interrupt()
    r = cell.wait(10)
    assert r.verdict == "interrupted" and not r.state_lost
    assert any(e.get("ename") == "KeyboardInterrupt" for e in events)
    assert text(run(shared, "print(kept)")[1]) == "yes\n"


def test_timeout_with_state_kept_and_without(fresh: Any) -> None:
    fresh.update_limits(timeout="1s")
    fresh.core.grace = 0.5
    run(fresh, "kept = 1")
    r, ev = run(fresh, "while True:\n    pass")
    assert (r.verdict, r.state_lost, r.message) == ("timeout", False, "cell timed out after 1 s")
    assert any(e.get("ename") == "TimeoutError" for e in ev)
    r, _ = run(fresh, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                      "while True:\n    pass")
    assert (r.verdict, r.state_lost) == ("timeout", True)
    assert 1.4 <= r.duration_ms / 1000 < 5
    r, ev = run(fresh, "kept")
    assert r.verdict == "error"  # a fresh interpreter


def test_a_timed_out_cell_gets_one_sigint(fresh: Any) -> None:
    """The host interrupts a cell that sends nothing for 0.5 s past its deadline; the agent,
    already ending it, sends no second SIGINT (under gVisor the first traceback takes over a
    second to format, and a second SIGINT left only "KeyboardInterrupt" on stderr)."""
    fresh.update_limits(timeout="1s")
    fresh.core.grace = 5.0
    r, ev = run(fresh, "import signal, time\nhits = []\n"
                       "signal.signal(signal.SIGINT, lambda *a: hits.append(1))\n"
                       "t = time.monotonic()\nwhile time.monotonic() - t < 2.5:\n    pass\n"
                       "print(len(hits))")
    assert (r.verdict, r.state_lost) == ("timeout", False)
    assert text(ev) == "1\n"


def test_cpu_time_budget(fresh: Any) -> None:
    fresh.update_limits(cpu_time="1s", timeout="20s")
    r, _ = run(fresh, "while True:\n    pass")
    assert r.verdict == "cpu_time"
    assert r.message == "cell used its 1 s CPU-time budget"


def test_a_crash_loses_only_the_interpreter(fresh: Any) -> None:
    fresh.write_file("kept.txt", "file")
    r, _ = run(fresh, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    assert (r.verdict, r.state_lost, r.exit_signal) == ("crashed", True, "SIGKILL")
    assert fresh.read_file("kept.txt") == b"file"
    assert run(fresh, "1 + 1")[0].ok


def test_output_cap_is_exact(fresh: Any) -> None:
    fresh.update_limits(output="1m")
    r, ev = run(fresh, "import sys\n_ = sys.stdout.write('z' * (3 << 20))")
    assert len(text(ev)) == 1 << 20
    assert r.dropped_chars == 2 << 20


def test_ipython_history_keeps_a_cells_output_up_to_the_cap(fresh: Any) -> None:
    """IPython 9 keeps every string a cell writes (for %notebook): it keeps about an output
    cap's worth of memory, so a cell that prints for hours does not grow until its limit."""
    fresh.update_limits(output="64k")
    assert run(fresh, "import sys; print('small'); print('err', file=sys.stderr)")[0].ok
    r, _ = run(fresh, "for i in range(200_000): print(i)")
    assert r.ok and r.dropped_chars > 1_000_000
    r, ev = run(fresh, "h = get_ipython().history_manager.outputs\n"
                       "print([[(o.output_type, sum(map(len, o.bundle['stream']))) for o in h[n]"
                       " if o.output_type.endswith('stream')] for n in sorted(h)][-2:])")
    small, big = ast.literal_eval(text(ev))
    assert small == [("out_stream", 6), ("err_stream", 4)]
    [(kind, kept)] = big
    # 400,000 writes of ~3 characters: kept are the first ~1,000, the 64 KiB cap counting
    # 56 bytes a string besides its characters (1.3 MB of text, ~25 MB of strings, before)
    assert kind == "out_stream" and 1_500 <= kept <= 3_000, kept


def test_history_of_this_session_is_searchable(fresh: Any) -> None:
    """`%history -l` and `-g` read IPython's SQLite history: kept in memory, as ipykernel's
    file would be for this session."""
    for code in ("marker_a = 1", "marker_b = 2"):
        assert run(fresh, code)[0].ok
    r, ev = run(fresh, "%history -n -l 2")
    assert r.ok and [ln.split(":", 1)[1].strip() for ln in text(ev).splitlines()] == [
        "marker_a = 1", "marker_b = 2"], text(ev)
    r, ev = run(fresh, "%history -g marker_b")
    assert r.ok and "marker_b = 2" in text(ev)


def test_the_working_directory_is_on_sys_path_after_the_stdlib(fresh: Any) -> None:
    """As ipykernel has it: `''` before site-packages, so a notebook's `json.py` does not
    shadow the standard library's, while its own modules import."""
    fresh.write_file("json.py", "raise RuntimeError('shadowed')\n")
    fresh.write_file("mymodule_here.py", "VALUE = 7\n")
    r, ev = run(fresh, "import sys, os, json, mymodule_here\n"
                       "print(sys.path[0] != os.getcwd(), sys.path.count(''), "
                       "json.__file__.startswith(os.path.dirname(os.__file__)), "
                       "mymodule_here.VALUE)")
    assert r.ok and text(ev) == "True 1 True 7\n", ev


def test_node_cells(shared: Any) -> None:
    r, ev = run(shared, "let n = 20; console.log('hi'); n + 1", lang="node")
    assert r.ok and text(ev) == "hi\n"
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == ["21"]
    r, ev = run(shared, "await new Promise(r => setTimeout(r, 10));\nn * 2", lang="node")
    assert [e["data"]["text/plain"] for e in ev if e["type"] == "result"] == ["40"]
    r, ev = run(shared, "throw new TypeError('bad')", lang="node")
    assert r.verdict == "error"
    assert [e["ename"] for e in ev if e["type"] == "error"] == ["TypeError"]


def test_variables_between_languages_and_environment(shared: Any) -> None:
    run(shared, "shared_value = {'a': [1, 2]}")
    shared.set_var("node", "shared_value", shared.get_var("python", "shared_value"))
    assert shared.get_var("node", "shared_value") == '{"a":[1,2]}'
    with pytest.raises(UsageError, match="not defined"):
        shared.get_var("python", "no_such_name")
    shared.set_env({"FAST_VAR": "set"})
    assert text(run(shared, "import os; print(os.environ['FAST_VAR'])")[1]) == "set\n"
    assert shared.execute_command("echo $FAST_VAR").stdout == "set\n"
    shared.set_env({"FAST_VAR": None})


def test_introspection(shared: Any) -> None:
    run(shared, "completable_name = 1")
    assert "completable_name" in shared.complete("completable_na", 14)["matches"]
    assert shared.inspect("len", 3)["found"] is True
    assert shared.is_complete("for i in x:")["status"] == "incomplete"
    assert shared.is_complete("x = 1")["status"] == "complete"


def test_commands(shared: Any) -> None:
    r = shared.execute_command("echo out; echo err >&2; exit 3")
    assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n")
    r = shared.execute_command(["sleep", "30"], timeout=1)
    assert r.timed_out and r.duration_ms < 5000
    # this backend's ps sees the whole machine: a duration nothing else uses
    left = f"sleep 300.{uuid.uuid4().int % 10**6:06d}"
    r = shared.execute_command(f"{left} & echo started")
    assert r.stdout == "started\n" and r.exit_code == 0
    ps = shared.execute_command("ps -eo args").stdout
    assert left not in ps  # what a command leaves behind ends with it


def test_files_stream_in_chunks_and_stay_confined(shared: Any) -> None:
    data = bytes(range(256)) * (20 << 12)  # 20 MiB
    progress: list[int] = []
    assert shared.write_file("big/data.bin", data, parents=True,
                             on_progress=progress.append) == len(data)
    assert progress[-1] == len(data) and len(progress) == 20
    assert shared.read_file("big/data.bin") == data
    assert shared.stat("big/data.bin").size == len(data)
    assert [e.name for e in shared.list_files("big")] == ["data.bin"]
    with pytest.raises(FileOperationError, match=r"larger than|cap"):
        shared.read_file("big/data.bin", max_bytes=1 << 20)
    with pytest.raises(FileOperationError, match=r"'\.\.'"):
        shared.read_file("../etc/passwd")
    with pytest.raises(FileOperationError, match="outside the sandbox"):
        shared.read_file("/etc/passwd")
    shared.delete_file("big", recursive=True)
    assert shared.list_files() == [] or "big" not in [e.name for e in shared.list_files()]


def test_stats_claim_no_limits_without_cgroups(shared: Any) -> None:
    h = shared.health()
    assert h.memory_usage > 0 and h.memory_limit is None and h.pids > 0
    assert shared.stats()["measure"] == "proc"
