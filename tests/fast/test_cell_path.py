"""The kernel's cell path without Jupyter or Docker: grammar, executor, policy, publishing.

The executor runs real cells in a local agent and publishes through a recording frontend,
exactly as SandboxKernel does over IOPub.
"""

from __future__ import annotations

from typing import Any

from sandbox_kernel.kernel.cells import Code, parse_cell
from sandbox_kernel.kernel.execution import Executor, Outcome
from sandbox_kernel.kernel.policy import OutputPolicy
from sandbox_kernel.sandbox.session import AsyncSession
from sandbox_kernel.sandbox.spec import Limits

from .conftest import FAST, in_loop


class Recorder:
    """A Frontend that keeps what was published and answers input from a list."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.answers = list(answers or [])
        self.asked: list[tuple[str, bool]] = []

    def publish(self, msg_type: str, content: dict[str, Any]) -> None:
        self.messages.append((msg_type, content))

    async def iopub_room(self) -> None:
        return None

    def iopub_lost(self) -> int:
        return 0

    async def ask(self, prompt: str, password: bool = False) -> str | None:
        self.asked.append((prompt, password))
        return self.answers.pop(0) if self.answers else None

    def of(self, msg_type: str) -> list[dict[str, Any]]:
        return [c for t, c in self.messages if t == msg_type]

    def text(self, name: str = "stdout") -> str:
        return "".join(c["text"] for c in self.of("stream") if c["name"] == name)


def execute(cells: list[str], answers: list[str] | None = None,
            limits: Limits = FAST) -> tuple[list[Outcome], Recorder]:
    rec = Recorder(answers)
    executor = Executor(rec, OutputPolicy(), Limits.widest(), grace=1.0)

    async def go(session: AsyncSession) -> list[Outcome]:
        outcomes = []
        for n, code in enumerate(cells, 1):
            cell = parse_cell(code)
            assert isinstance(cell, Code)
            if cell.lang == "bash":
                outcomes.append(await executor.run_shell(session, cell))
            else:
                outcomes.append(await executor.run_code(
                    session, cell, execution_count=n, silent=False, store_history=True,
                    user_expressions={}, allow_stdin=True, on_start=lambda run: None))
        return outcomes

    return in_loop(go, limits=limits), rec


def test_streams_results_and_errors_become_messages() -> None:
    (ok, err), rec = execute(["print('hi')\n21 * 2", "raise ValueError('no')"])
    assert ok.reply["status"] == "ok" and ok.result_text == "42"
    assert ok.accounting["verdict"] == "ok" and ok.accounting["cpu_seconds"] is not None
    assert rec.text() == "hi\n"
    assert [c["execution_count"] for c in rec.of("execute_result")] == [1]
    assert err.reply["status"] == "error" and err.reply["ename"] == "ValueError"
    assert rec.of("error")[0]["evalue"] == "no"


def test_rich_output_goes_through_the_policy() -> None:
    (out,), rec = execute(["from IPython.display import display, HTML, Markdown\n"
                           "display(HTML('<b onclick=\"alert(1)\">bold</b><script>x</script>'))\n"
                           "display(Markdown('![x](https://example.invalid/a.png) *em*'))"])
    assert out.reply["status"] == "ok"
    html, md = (c["data"] for c in rec.of("display_data"))
    assert "onclick" not in html["text/html"] and "<script" not in html["text/html"]
    assert "<b>bold</b>" in html["text/html"]
    assert "text/markdown" not in md and "<em>em</em>" in md["text/html"]
    assert "example.invalid" not in str(md)
    assert "[sandbox] removed from this output" in rec.text("stderr")


def test_input_is_answered_by_the_frontend() -> None:
    (out,), rec = execute(["name = input('who? ')\nprint('hello', name)"], answers=["ada"])
    assert out.reply["status"] == "ok"
    assert rec.asked == [("who? ", False)]
    assert rec.text() == "hello ada\n"


def test_the_output_cap_is_counted_and_named() -> None:
    (out,), rec = execute(["import sys\n_ = sys.stdout.write('y' * (3 << 20))"],
                          limits=FAST.changed(output="1m"))
    assert len(rec.text()) == 1 << 20
    notice = rec.text("stderr")
    assert "output truncated after 1 MB: 2,097,152 more characters were not shown" in notice
    assert "raise with %sandbox limits output=4m to see it all" in notice
    assert out.reply["status"] == "ok"


def test_shell_cells_and_a_lost_interpreter() -> None:
    (bash, crash, after), rec = execute(["%%bash\necho from-bash\nexit 3",
                                         "import os\nos.kill(os.getpid(), 9)", "1 + 1"])
    assert rec.text().startswith("from-bash\n")
    assert bash.reply["ename"] == "CalledProcessError" and "status 3" in bash.reply["evalue"]
    assert crash.reply["ename"] == "SandboxError" and "variables were lost" in \
        crash.reply["evalue"]
    assert crash.accounting["verdict"] == "error" and crash.accounting["reason"] == "crashed"
    assert after.result_text == "2"


def test_a_cell_that_swallows_its_timeout_still_ends_with_a_timeout_error() -> None:
    """The verdict is the agent's: a cell that catches the interrupt and returns quietly
    sends no traceback, and still ends as TimeoutError (not a generic SandboxError)."""
    (swallowed, after), _ = execute(
        ["import time\ntry:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    pass", "6 * 7"],
        limits=Limits(timeout=1, cpu_time=20))
    assert (swallowed.reply["ename"], swallowed.reply["evalue"]) == (
        "TimeoutError", "cell timed out after 1 s")
    assert swallowed.accounting["verdict"] == "timeout"
    assert after.result_text == "42"


class BrokenAsk(Recorder):
    async def ask(self, prompt: str, password: bool = False) -> str | None:
        raise RuntimeError("no stdin channel")


def test_a_frontend_that_cannot_be_asked_gives_input_end_of_file() -> None:
    rec = BrokenAsk()
    executor = Executor(rec, OutputPolicy(), Limits.widest(), grace=1.0)
    cell = parse_cell("try:\n    input('who? ')\nexcept EOFError:\n    print('eof')")
    assert isinstance(cell, Code)

    async def go(session: AsyncSession) -> Outcome:
        return await executor.run_code(
            session, cell, execution_count=1, silent=False, store_history=True,
            user_expressions={}, allow_stdin=True, on_start=lambda run: None)

    out = in_loop(go)
    assert out.reply["status"] == "ok" and out.accounting["verdict"] == "ok"
    assert rec.text() == "eof\n"
    assert "could not ask the frontend for input (RuntimeError: no stdin channel)" in \
        rec.text("stderr")
