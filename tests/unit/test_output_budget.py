"""The per-cell output budget and the bounded history (fast tier)."""

from __future__ import annotations

from sandbox_kernel.kernel.policy import History, Note, OutputBudget
from sandbox_kernel.kernel.policy.budget import MAX_ERROR, MAX_NOTICES


def test_streams_are_cut_where_the_cap_falls() -> None:
    b = OutputBudget(10, "10 B", "%sandbox limits output=16m")
    assert b.take_text("abcdef") == "abcdef"
    assert b.take_text("ghijkl") == "ghij"
    assert b.take_text("more") == ""
    assert b.summary() == ["[sandbox] output truncated after 10 B: 6 more characters were "
                           "not shown (raise with %sandbox limits output=16m)"]


def test_rich_outputs_are_whole_or_counted_and_share_the_cap_with_streams() -> None:
    b = OutputBudget(100, "100 B")
    assert b.admit(60)
    assert b.take_text("x" * 30) == "x" * 30
    assert not b.admit(20)  # 10 left
    assert b.admit(10)
    assert not b.admit(1)
    assert b.summary(5) == ["[sandbox] output truncated after 100 B: 5 more characters and "
                            "2 more outputs were not shown"]


def test_errors_are_always_shown_but_bounded_to_their_last_lines() -> None:
    b = OutputBudget(0, "0 B")
    tb = [f"line {i} " + "x" * 1000 for i in range(1000)]
    kept = b.error("E", "v", tb)
    assert kept[-1] == tb[-1]
    assert kept[0].startswith("[sandbox] ") and "earlier traceback lines" in kept[0]
    assert sum(map(len, kept)) <= MAX_ERROR + 100
    assert b.error("E", "v", ["a", "b"]) == ["a", "b"]


def test_notices_are_limited_per_cell_then_counted() -> None:
    b = OutputBudget(1000, "1 KB")
    notes = (Note("application/javascript", "c.Sandbox.allow_javascript = True"),)
    lines = [b.notice(notes) for _ in range(MAX_NOTICES + 5)]
    assert all(lines[:MAX_NOTICES]) and not any(lines[MAX_NOTICES:])
    assert b.notice(()) is None
    assert b.summary() == ["[sandbox] 5 more outputs had content removed by the output "
                           "policy (their notices were not shown)"]
    b.undelivered = 3
    assert b.summary()[-1] == ("[sandbox] 3 messages could not be delivered: the frontend "
                               "stopped reading output")


def test_history_keeps_bounded_text() -> None:
    h = History(max_output=10, max_total=1000, max_entries=50)
    for i in range(200):
        h.add(1, i, f"cell {i}", "r" * 10_000)
    entries = h.entries()
    assert len(entries) <= 50
    assert entries[-1] == (1, 199, "cell 199", "r" * 10 + "…")
    assert h.total <= 1000
    h2 = History(max_total=100)
    h2.add(1, 1, "s" * 10_000, "o")
    assert h2.total <= 100 or not h2.entries()


def test_history_takes_a_malformed_request_without_failing() -> None:
    h = History()
    h.add(1, 1, 12345, None)
    assert h.entries() == [(1, 1, "12345", "")]
