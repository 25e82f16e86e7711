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
const { Writable } = require('stream');
const { createRequire } = require('module');

const [RFD, WFD] = (process.env.SANDBOX_WORKER_FDS || '3,4').split(',').map(Number);
delete process.env.SANDBOX_WORKER_FDS;
const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;

function send(frame) {
  const data = Buffer.from(JSON.stringify(frame) + '\n', 'utf8');
  let off = 0;
  while (off < data.length) {
    try {
      off += fs.writeSync(WFD, data, off);
    } catch (e) {
      if (e.code !== 'EAGAIN') throw e;
    }
  }
}

// ----- output -------------------------------------------------------------------------
let runId = 0;
let budget = Infinity;
let dropped = 0;
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
    let text = typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    if (budget <= 0) { dropped += text.length; return cb(); }
    if (text.length > budget) { dropped += text.length - budget; text = text.slice(0, budget); }
    budget -= text.length;
    // Keep stdout/stderr interleaving: the other stream's pending text goes first.
    const other = this === streams.stdout ? streams.stderr : streams.stdout;
    if (other && other.buf) other.flush();
    this.buf += text;
    if (this.buf.length >= FLUSH_BYTES || Date.now() - this.last >= FLUSH_MS) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), FLUSH_MS);
    cb();
  }
  flush() {
    if (this.timer) { clearTimeout(this.timer); this.timer = null; }
    this.last = Date.now();
    if (!this.buf) return;
    const text = this.buf;
    this.buf = '';
    send({ id: runId, type: 'stream', name: this.name, text });
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

// ----- the context --------------------------------------------------------------------
const cellConsole = new console.Console({ stdout: streams.stdout, stderr: streams.stderr });
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
  __filename: path.join(process.cwd(), '[cell]'),
});

function inspectValue(value) {
  return typeof value === 'string' && value.length > 0
    ? util.inspect(value, { depth: 4, maxStringLength: 100000 })
    : util.inspect(value, { depth: 4, maxArrayLength: 200, breakLength: 100 });
}

// ----- cell transforms ----------------------------------------------------------------
const IDENT = '[A-Za-z_$][\\w$]*';
const STATEMENT_START = /^(?:(?:let|const|var|function|async\s+function|class|if|for|while|do|try|switch|return|throw|import|export|break|continue)\b|[}\])]|\/\/|\/\*|\*)/;

function classic(code) {
  return code
    .replace(new RegExp(`^(let|const)(\\s+)`, 'gm'), 'var$2')
    .replace(new RegExp(`^class\\s+(${IDENT})`, 'gm'), 'var $1 = class $1');
}

function asyncWrapped(code, withResult = true) {
  let body = code
    .replace(new RegExp(`^(?:let|const|var)\\s+(${IDENT})\\s*;?\\s*$`, 'gm'), '$1 = undefined;')
    .replace(new RegExp(`^(?:let|const|var)\\s+(${IDENT})\\s*=`, 'gm'), '$1 =')
    .replace(new RegExp(`^(?:let|const)(\\s+[[{])`, 'gm'), 'var$1')
    .replace(new RegExp(`^(async\\s+)?function(\\s*\\*?\\s*)(${IDENT})`, 'gm'),
      '$3 = $1function$2$3')
    .replace(new RegExp(`^class\\s+(${IDENT})`, 'gm'), '$1 = class $1');
  const lines = body.split('\n');
  let last = lines.length - 1;
  while (last >= 0 && lines[last].trim() === '') last--;
  if (withResult && last >= 0) {
    const line = lines[last];
    const prev = last > 0 ? lines[last - 1].trimEnd() : '';
    const continues = /[,([+\-*/%=&|?:.!<>~^]$/.test(prev) || /^[.([+\-*/%=&|?:,]/.test(line);
    const startsStatement = last === 0 || !continues;
    if (startsStatement && !/^\s/.test(line) && !STATEMENT_START.test(line)) {
      lines[last] = `return (${line.replace(/;\s*$/, '')});`;
    }
  }
  body = lines.join('\n');
  return `(async () => {${body}\n})()`;
}

function compile(code, filename) {
  try {
    return { script: new vm.Script(classic(code), { filename }), async: false };
  } catch (e) {
    if (!(e instanceof SyntaxError) || !/await is only valid|Unexpected reserved word/.test(
      e.message) || !/\bawait\b/.test(code)) throw e;
    try {
      return { script: new vm.Script(asyncWrapped(code), { filename }), async: true };
    } catch (e2) {
      // The last line was not one expression (e.g. `await a(); b()`): run it without a result.
      if (!(e2 instanceof SyntaxError)) throw e2;
      return { script: new vm.Script(asyncWrapped(code, false), { filename }), async: true };
    }
  }
}

// ----- running cells ------------------------------------------------------------------
let pending = null; // the current async cell: { settle(status) }

function errorFrame(e) {
  if (e instanceof Error || (e && typeof e === 'object' && 'stack' in e)) {
    const interrupted = /Script execution was interrupted/.test(String(e.message));
    if (interrupted) {
      return { type: 'error', ename: 'KeyboardInterrupt', evalue: 'interrupted',
               traceback: ['KeyboardInterrupt: the cell was interrupted'] };
    }
    const stack = String(e.stack || `${e.name}: ${e.message}`).split('\n')
      .filter((l) => !/node_runner\.js|node:internal|node:events|node:vm|ReadStream/.test(l));
    return { type: 'error', ename: String(e.name || 'Error'), evalue: String(e.message),
             traceback: stack };
  }
  return { type: 'error', ename: 'Error', evalue: util.inspect(e),
           traceback: [`Uncaught ${util.inspect(e)}`] };
}

let cpuStart = process.cpuUsage();

function finish(req, status) {
  flushAll();
  pending = null;
  const cpu = process.cpuUsage(cpuStart);
  send({ id: req.id, type: 'done', status, dropped_chars: dropped,
         cpu_seconds: (cpu.user + cpu.system) / 1e6 });
}

function showResult(req, value) {
  if (value === undefined || req.silent) return;
  emit({ type: 'result', data: { 'text/plain': inspectValue(value) }, metadata: {},
         execution_count: req.execution_count || null });
}

function run(req) {
  runId = req.id;
  budget = typeof req.output_cap === 'number' && req.output_cap > 0 ? req.output_cap : Infinity;
  dropped = 0;
  // A cell's first output goes out at once, even if the cell then blocks the event loop.
  streams.stdout.last = 0;
  streams.stderr.last = 0;
  process.env.SANDBOX_TASK = `cell-${req.id}`;
  cpuStart = process.cpuUsage();
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
  streams.stderr.write(`Uncaught ${String(e && e.stack || e)}\n`);
});
process.on('unhandledRejection', (e) => {
  streams.stderr.write(`Unhandled promise rejection: ${String(e && e.stack || e)}\n`);
});

// ----- introspection and variables ----------------------------------------------------
function reply(req, content) {
  send({ id: req.id, type: 'reply', content });
}

function lookup(dotted) {
  let obj = context;
  for (const part of dotted.split('.')) {
    if (obj === null || obj === undefined) return undefined;
    obj = part in Object(obj) ? obj[part] : vm.runInContext(
      `typeof ${part} === 'undefined' ? undefined : ${part}`, context);
    if (obj === undefined) return undefined;
  }
  return obj;
}

function propertyNames(obj) {
  const names = new Set();
  for (let o = Object(obj); o; o = Object.getPrototypeOf(o)) {
    for (const n of Object.getOwnPropertyNames(o)) names.add(n);
  }
  return [...names].filter((n) => /^[A-Za-z_$][\w$]*$/.test(n));
}

function complete(req) {
  const code = String(req.code || '');
  const pos = Number.isInteger(req.cursor_pos) ? req.cursor_pos : code.length;
  const m = /(?:([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\.)?([\w$]*)$/.exec(code.slice(0, pos));
  const prefix = m ? m[2] : '';
  let names;
  if (m && m[1]) {
    const obj = lookup(m[1]);
    names = obj === undefined || obj === null ? [] : propertyNames(obj);
  } else {
    names = [...new Set([...Object.getOwnPropertyNames(context),
      ...vm.runInContext('Object.getOwnPropertyNames(globalThis)', context)])];
  }
  const matches = names.filter((n) => n.startsWith(prefix)).sort().slice(0, 500);
  reply(req, { status: 'ok', matches, cursor_start: pos - prefix.length, cursor_end: pos,
               metadata: {} });
}

function inspect(req) {
  const code = String(req.code || '');
  const pos = Number.isInteger(req.cursor_pos) ? req.cursor_pos : code.length;
  const left = /[\w$.]*$/.exec(code.slice(0, pos))[0];
  const right = /^[\w$]*/.exec(code.slice(pos))[0];
  const name = (left + right).replace(/^\.+|\.+$/g, '');
  let value;
  try { value = name ? lookup(name) : undefined; } catch { value = undefined; }
  if (value === undefined) return reply(req, { status: 'ok', found: false, data: {}, metadata: {} });
  const head = typeof value === 'function'
    ? String(value).split('\n')[0].slice(0, 300) : util.inspect(value, { depth: 2 });
  reply(req, { status: 'ok', found: true, metadata: {},
               data: { 'text/plain': `${name}: ${typeof value}\n${head}` } });
}

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
    reply(req, { status: 'ok', json });
  } catch (e) {
    reply(req, { status: 'error', message: String(e.message || e) });
  }
}

function setVar(req) {
  try {
    context[String(req.name)] = JSON.parse(String(req.json));
    reply(req, { status: 'ok' });
  } catch (e) {
    reply(req, { status: 'error', message: String(e.message || e) });
  }
}

function setEnv(req) {
  for (const [k, v] of Object.entries(req.env || {})) {
    if (v === null) delete process.env[k]; else process.env[k] = String(v);
  }
  if (req.id) reply(req, { status: 'ok' });
}

// ----- the request loop ---------------------------------------------------------------
const handlers = { run, complete, inspect, is_complete: isComplete, get_var: getVar,
                   set_var: setVar, set_env: setEnv };
let inbuf = '';
const input = fs.createReadStream(null, { fd: RFD, encoding: 'utf8', highWaterMark: 65536 });
input.on('data', (chunk) => {
  inbuf += chunk;
  let nl;
  while ((nl = inbuf.indexOf('\n')) >= 0) {
    const line = inbuf.slice(0, nl);
    inbuf = inbuf.slice(nl + 1);
    let req;
    try { req = JSON.parse(line); } catch { continue; }
    const handler = req && handlers[req.type];
    if (!handler) continue;
    try {
      handler(req);
    } catch (e) {
      if (req.type === 'run') { emit(errorFrame(e)); finish(req, 'error'); }
      else reply(req, { status: 'error', message: String(e && e.message || e) });
    }
  }
});
input.on('end', () => process.exit(0));

try { fs.writeFileSync('/proc/self/oom_score_adj', '1000'); } catch { /* not Linux */ }
send({ id: 0, type: 'log', message: 'node worker ready', node: process.version });
