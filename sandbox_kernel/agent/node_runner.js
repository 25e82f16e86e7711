'use strict';
// The persistent Node.js interpreter of a sandbox, supervised by the agent.
//
// It speaks the agent's worker protocol (NDJSON frames on two pipes named by
// SANDBOX_WORKER_FDS) and runs every %%node cell in one `vm` context, so variables and
// functions survive between cells. Top-level `let`/`const`/`class` become re-runnable
// globals, and a cell using top-level `await` runs as an async function whose top-level
// declarations are hoisted to globals. Like IPython, it reports the value of the last
// expression. SIGINT interrupts a running cell (vm's breakOnSigint), keeping state.

const fs = require('fs');
const path = require('path');
const util = require('util');
const vm = require('vm');
const childProcess = require('child_process');
const { Writable } = require('stream');
const { createRequire } = require('module');
const { Link, pieces } = require('./node_frames');
const { classic, asyncWrapped, compile, IMPORT } = require('./node_compile');
const { introspection } = require('./node_introspect');
const { ProcessExit, catchExit, exitFrame, importer } = require('./node_process');

require('./node_cpus');  // os.cpus() follows the CPU limit

const link = new Link();
const realExit = catchExit(process);
const send = (frame) => link.send(frame);
const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;

// ----- output -------------------------------------------------------------------------
let runId = 0;
const streams = {};

class CellStream extends Writable {
  constructor(name) {
    super({ decodeStrings: false });
    this.name = name;
    this.buf = '';
    this.last = Date.now();
    this.timer = null;
  }
  _write(chunk, enc, cb) {
    const text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    // Keep stdout/stderr interleaving: the other stream's pending text goes first.
    const other = this === streams.stdout ? streams.stderr : streams.stdout;
    if (other && other.buf) other.flush();
    this.buf += text;
    if (this.buf.length >= FLUSH_BYTES || Date.now() - this.last >= FLUSH_MS) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
    cb();
  }
  flush(id = runId) {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.last = Date.now();
    if (!this.buf) return;
    const text = this.buf;
    this.buf = '';
    for (const piece of pieces(text)) send({ id, type: 'stream', name: this.name, text: piece });
  }
}
streams.stdout = new CellStream('stdout');
streams.stderr = new CellStream('stderr');
const flushAll = () => { streams.stdout.flush(); streams.stderr.flush(); };

function emit(frame) {
  flushAll();
  frame.id = runId;
  send(frame);
}

// Processes a cell starts with inherited stdio write through this worker, tagged with the
// cell that started them: what they print after that cell ended is dropped by the agent.
function relayed(options, id) {
  const stdio = options && options.stdio;
  const inherit = (s) => s === 'inherit' || s === process.stdout || s === process.stderr ||
    s === 1 || s === 2;
  if (stdio === 'inherit') return { ...options, stdio: ['inherit', 'pipe', 'pipe'], _relay: [1, 2], _id: id };
  if (Array.isArray(stdio)) {
    const copy = stdio.slice();
    const relay = [];
    for (const i of [1, 2]) if (inherit(copy[i])) { copy[i] = 'pipe'; relay.push(i); }
    return relay.length ? { ...options, stdio: copy, _relay: relay, _id: id } : options;
  }
  return options;
}

function relayChild(child, options) {
  if (!options || !options._relay) return child;
  for (const i of options._relay) {
    const name = i === 1 ? 'stdout' : 'stderr';
    const pipe = i === 1 ? child.stdout : child.stderr;
    if (!pipe) continue;
    pipe.setEncoding('utf8');
    pipe.on('data', (text) => {
      for (const piece of pieces(text)) send({ id: options._id, type: 'stream', name, text: piece });
    });
  }
  return child;
}

const originalSpawn = childProcess.spawn;
childProcess.spawn = function spawn(command, args, options) {
  if (!Array.isArray(args) && args && typeof args === 'object') { options = args; args = []; }
  const opts = relayed(options, runId);
  const { _relay, _id, ...clean } = opts || {};
  return relayChild(originalSpawn.call(this, command, args || [], clean), opts);
};

// ----- the context --------------------------------------------------------------------
// Plain text, as a local Node kernel prints (FORCE_COLOR, set for a notebook's programs,
// would colour it).
const cellConsole = new console.Console({ stdout: streams.stdout, stderr: streams.stderr,
                                          colorMode: false });
const userRequire = createRequire(path.join(process.cwd(), '__sandbox__.js'));

function display(value) {
  emit({ type: 'display', data: { 'text/plain': inspectValue(value) }, metadata: {},
         transient: {}, update: false });
}
display.html = (html) => emit({ type: 'display', data: { 'text/html': String(html),
  'text/plain': '[HTML]' }, metadata: {}, transient: {}, update: false });
display.markdown = (md) => emit({ type: 'display', data: { 'text/markdown': String(md),
  'text/plain': String(md) }, metadata: {}, transient: {}, update: false });

const context = vm.createContext({
  console: cellConsole, require: userRequire, process, Buffer, URL, URLSearchParams,
  TextEncoder, TextDecoder, setTimeout, clearTimeout, setInterval, clearInterval,
  setImmediate, clearImmediate, queueMicrotask, structuredClone, fetch: globalThis.fetch,
  AbortController, performance, display, module: { exports: {} }, __dirname: process.cwd(),
  __filename: path.join(process.cwd(), '[cell]'), [IMPORT]: importer(userRequire, process.cwd()),
});

function inspectValue(value) {
  return typeof value === 'string' && value.length > 0
    ? util.inspect(value, { depth: 4, maxStringLength: 100000 })
    : util.inspect(value, { depth: 4, maxArrayLength: 200, breakLength: 100 });
}

// ----- running cells ------------------------------------------------------------------
let pending = null; // the current async cell: { settle(status) }

function errorFrame(e) {
  if (e instanceof ProcessExit) return exitFrame(e);
  if (e instanceof Error || (e && typeof e === 'object' && 'stack' in e)) {
    const interrupted = /Script execution was interrupted/.test(String(e.message));
    if (interrupted) {
      return { type: 'error', ename: 'KeyboardInterrupt', evalue: 'interrupted',
               traceback: ['KeyboardInterrupt: the cell was interrupted'] };
    }
    const stack = String(e.stack || `${e.name}: ${e.message}`).split('\n')
      .filter((l) => !/node_(?:runner|process|compile)\.js|node:internal|node:events|node:vm|ReadStream/.test(l));
    return { type: 'error', ename: String(e.name || 'Error'), evalue: String(e.message),
             traceback: stack };
  }
  return { type: 'error', ename: 'Error', evalue: util.inspect(e),
           traceback: [`Uncaught ${util.inspect(e)}`] };
}

// A sync that arrives while an async cell is still pending is answered when it ends: the
// agent believes `done` only once the request loop answers the sync sent with the run.
let waitingSyncs = [];

function finish(req, status) {
  flushAll();
  pending = null;
  send({ id: req.id, type: 'done', status, user_expressions: {} });
  const syncs = waitingSyncs;
  waitingSyncs = [];
  for (const s of syncs) reply(s, {});
}

function sync(req) {
  if (pending) waitingSyncs.push(req); else reply(req, {});
}

function showResult(req, value) {
  if (value === undefined || req.silent) return;
  emit({ type: 'result', data: { 'text/plain': inspectValue(value) }, metadata: {},
         execution_count: req.execution_count || null });
}

function run(req) {
  streams.stdout.flush();
  streams.stderr.flush();
  runId = req.id;
  // A cell's first output goes out at once, even if the cell then blocks the event loop.
  streams.stdout.last = 0;
  streams.stderr.last = 0;
  let compiled;
  const filename = `[${req.execution_count || req.id}]`;
  try {
    compiled = compile(String(req.code || ''), filename);
  } catch (e) {
    emit(errorFrame(e));
    return finish(req, 'error');
  }
  let value;
  try {
    value = compiled.script.runInContext(context, { breakOnSigint: true, displayErrors: false });
  } catch (e) {
    emit(errorFrame(e));
    return finish(req, 'error');
  }
  if (!compiled.async) {
    showResult(req, value);
    return finish(req, 'ok');
  }
  const cell = {
    settled: false,
    settle(status, frame) {
      if (this.settled) return;
      this.settled = true;
      if (frame) emit(frame);
      finish(req, status);
    },
  };
  pending = cell;
  Promise.resolve(value).then(
    (v) => { if (!cell.settled) { showResult(req, v); cell.settle('ok'); } },
    (e) => cell.settle('error', errorFrame(e)),
  );
}

process.on('SIGINT', () => {
  if (pending) {
    pending.settle('error', { type: 'error', ename: 'KeyboardInterrupt', evalue: 'interrupted',
      traceback: ['KeyboardInterrupt: the cell was interrupted (its pending work was abandoned)'] });
  }
});
process.on('uncaughtException', (e) => {
  if (e instanceof ProcessExit && pending) return pending.settle('error', exitFrame(e));
  if (e instanceof ProcessExit) return streams.stderr.write(`${e.message} after its cell ended: ignored\n`);
  streams.stderr.write(`Uncaught ${String(e && e.stack || e)}\n`);
});
process.on('unhandledRejection', (e) => {
  streams.stderr.write(`Unhandled promise rejection: ${String(e && e.stack || e)}\n`);
});

// ----- introspection and variables ----------------------------------------------------
function reply(req, body) {
  send({ id: req.id, type: 'reply', status: 'ok', body });
}

function fail(req, message) {
  send({ id: req.id, type: 'reply', status: 'error', code: 'EINVAL',
         message: String(message).slice(0, 2000) });
}

const { complete, inspect, lookup } = introspection(context, reply);

function isComplete(req) {
  const code = String(req.code || '');
  for (const attempt of [classic, asyncWrapped]) {
    try {
      new vm.Script(attempt(code));
      return reply(req, { status: 'complete' });
    } catch (e) {
      if (/Unexpected end of input|Unterminated template|missing \) after/.test(e.message)) {
        return reply(req, { status: 'incomplete', indent: '' });
      }
    }
  }
  reply(req, { status: 'invalid' });
}

function getVar(req) {
  try {
    const value = lookup(String(req.name));
    if (value === undefined) throw new Error(`${req.name} is not defined in Node`);
    const json = JSON.stringify(value);
    if (json === undefined) throw new Error(`${req.name} is not JSON-serialisable`);
    reply(req, { json });
  } catch (e) {
    fail(req, e.message || e);
  }
}

function setVar(req) {
  try {
    context[String(req.name)] = JSON.parse(String(req.json));
    reply(req, {});
  } catch (e) {
    fail(req, e.message || e);
  }
}

function setEnv(req) {
  for (const [k, v] of Object.entries(req.env || {})) {
    if (v === null) delete process.env[k]; else process.env[k] = String(v);
  }
}

// ----- the request loop ---------------------------------------------------------------
const handlers = { run, complete, inspect, is_complete: isComplete, get_var: getVar,
                   set_var: setVar, set_env: setEnv, sync };
link.listen((req) => {
  try {
    handlers[req.type](req);
  } catch (e) {
    if (req.type === 'run') { emit(errorFrame(e)); finish(req, 'error'); }
    else if (req.type !== 'set_env' && req.type !== 'input_reply') fail(req, e && e.message || e);
  }
}, () => realExit(0));

send({ id: 0, type: 'ready', version: process.version });
