"""Node cells as a JavaScript user expects them, through jupyter_client on the
`sandbox-node` kernelspec: results after top-level await, dynamic import(), completion of
let/const names, inspection, process.exit(n)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import KernelHandle

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def k() -> Iterator[KernelHandle]:
    h = KernelHandle("sandbox-node")
    try:
        yield h
    finally:
        h.close()


def test_the_last_expression_after_top_level_await_is_the_result(k: KernelHandle) -> None:
    assert k.value("await 1; 5") == "5"
    k.ok("async function f() { return 7 }")
    assert k.value("const q = await f(); q * 6") == "42"
    assert k.value("q") == "7"
    assert k.value("const s = 'a;b'; await 0; s + '!' // a comment") == "'a;b!'"
    assert k.value("const o = await Promise.resolve({ a: 1 })\no.a") == "1"
    r = k.ok("await 0\nif (true) { 1 }")
    assert r.results() == []  # a statement has no value, as in the REPL's await mode


def test_dynamic_import_of_builtins_packages_and_es_modules(k: KernelHandle) -> None:
    assert k.value("const fs = await import('fs'); typeof fs.readFileSync") == "'function'"
    assert k.value("(await import('node:path')).join('a', 'b')") == "'a/b'"
    k.ok("require('fs').writeFileSync('esm_mod.mjs', 'export const v = 42;\\n')")
    assert k.value("(await import('./esm_mod.mjs')).v") == "42"
    r = k.ok("import('os').then((m) => globalThis.platform = m.platform()); 1")
    assert r.results()[-1]["text/plain"] == "1"
    later = k.ok("platform")
    assert later.results()[-1]["text/plain"] == "'linux'"
    assert later.text("stderr") == ""  # nothing from the import leaks into the next cell
    r = k.execute("await import('no-such-package-xyz')")
    assert r.status == "error" and "no-such-package-xyz" in r.reply["evalue"], r


def test_let_and_const_names_are_completed_and_inspected(k: KernelHandle) -> None:
    k.ok("let zebraLet = 1; const zebraConst = { a: 2 }; var zebraVar = 3")
    reply = k.request("complete", "zebra", 5)
    assert {"zebraLet", "zebraConst", "zebraVar"} <= set(reply["matches"]), reply
    assert reply["cursor_start"] == 0
    found = k.request("inspect", "zebraConst", 10)
    assert found["found"] is True and "{ a: 2 }" in found["data"]["text/plain"], found
    assert k.value("zebraLet = 5; zebraLet") == "5"  # still re-runnable, still assignable


def test_inspect_finds_globals_and_the_function_being_called(k: KernelHandle) -> None:
    for code in ("Math", "console", "JSON.stringify"):
        reply = k.request("inspect", code, len(code))
        assert reply["found"] is True, (code, reply)
    reply = k.request("inspect", "Math.max(1, ", len("Math.max(1, "))
    assert reply["found"] is True and "max" in reply["data"]["text/plain"], reply
    assert k.request("inspect", "notDefinedAnywhere", 5)["found"] is False


def test_process_exit_is_an_exit_with_its_code_not_a_crash(k: KernelHandle) -> None:
    k.ok("const keptThroughExit = 'still here'")
    r = k.execute("console.log('before'); process.exit(3); console.log('never')")
    assert r.status == "error"
    assert (r.reply["ename"], r.reply["evalue"]) == ("ProcessExit", "exit code 3"), r
    assert r.text("stdout") == "before\n"
    assert "crash" not in r.shown() and "restarted" not in r.shown()
    assert k.value("keptThroughExit") == "'still here'"
    r = k.execute("await new Promise(() => setTimeout(() => process.exit(4), 50))")
    assert (r.reply["ename"], r.reply["evalue"]) == ("ProcessExit", "exit code 4"), r
    r = k.execute("process.exit()")
    assert (r.reply["ename"], r.reply["evalue"]) == ("ProcessExit", "exit code 0"), r
    assert k.value("keptThroughExit") == "'still here'"
