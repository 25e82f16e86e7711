'use strict';
// The Node worker's side of the contract: framing and checks, from contract.json (which
// protocol.py generates), so Node never keeps a second copy of the message definitions.

const fs = require('fs');
const path = require('path');

const CONTRACT = JSON.parse(fs.readFileSync(path.join(__dirname, 'contract.json'), 'utf8'));
const MAX_FRAME = CONTRACT.max_frame_bytes;

function isStrMap(v, nullable) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) &&
    Object.values(v).every((x) => typeof x === 'string' || (nullable && x === null));
}

function depthOk(v, budget) {
  if (budget < 0) return false;
  if (v === null || typeof v !== 'object') return true;
  return Object.values(v).every((x) => depthOk(x, budget - 1));
}

function fieldOk(f, v) {
  const hi = f.hi || 0;
  switch (f.kind) {
    case 'str': return typeof v === 'string' && v.length <= hi;
    case 'int': return Number.isInteger(v) && v >= (f.lo || 0) && v <= hi;
    case 'num': return typeof v === 'number' && Number.isFinite(v) && v >= (f.lo || 0) && v <= hi;
    case 'bool': return typeof v === 'boolean';
    case 'enum': return f.choices.includes(v);
    case 'strs': return Array.isArray(v) && v.length <= hi && v.every((x) => typeof x === 'string');
    case 'strmap': return isStrMap(v, false) && Object.keys(v).length <= hi;
    case 'envmap': return isStrMap(v, true) && Object.keys(v).length <= hi;
    case 'obj': return v !== null && typeof v === 'object' && !Array.isArray(v) &&
      Object.keys(v).length <= hi && depthOk(v, CONTRACT.max_depth);
    default: return false;
  }
}

// A request from the agent, checked like every side checks: the fields of its type only.
function check(frame) {
  if (frame === null || typeof frame !== 'object' || Array.isArray(frame)) throw new Error('not an object');
  if (!Number.isInteger(frame.id) || frame.id < 0) throw new Error('bad id');
  const spec = CONTRACT.worker_requests[frame.type];
  if (!spec) throw new Error(`unexpected frame type ${String(frame.type).slice(0, 40)}`);
  for (const [name, f] of Object.entries(spec)) {
    if (!(name in frame)) {
      if (f.optional) continue;
      throw new Error(`${frame.type} frame lacks ${name}`);
    }
    if (frame[name] === null && f.nullable) continue;
    if (!fieldOk(f, frame[name])) throw new Error(`${frame.type} frame: bad ${name}`);
  }
  for (const key of Object.keys(frame)) {
    if (key !== 'id' && key !== 'type' && !(key in spec)) throw new Error(`unknown field ${key}`);
  }
  return frame;
}

// Reopen an inherited pipe through /proc so it is close-on-exec (libuv opens so), then
// drop the inherited descriptor: processes a cell starts never hold the agent's pipes.
function private_(fd, flags) {
  const copy = fs.openSync(`/proc/self/fd/${fd}`, flags);
  fs.closeSync(fd);
  return copy;
}

class Link {
  constructor() {
    const [ctrl, reply] = (process.env.SANDBOX_WORKER_FDS || '3,4').split(',').map(Number);
    delete process.env.SANDBOX_WORKER_FDS;
    this.ctrl = private_(ctrl, 'r');
    this.replyFd = private_(reply, 'w');
    this.inbuf = '';
  }

  send(frame) {
    const data = Buffer.from(JSON.stringify(frame) + '\n', 'utf8');
    if (data.length > MAX_FRAME) throw new Error(`frame of ${data.length} bytes is too large`);
    let off = 0;
    while (off < data.length) {
      try {
        off += fs.writeSync(this.replyFd, data, off);
      } catch (e) {
        if (e.code !== 'EAGAIN') throw e;
      }
    }
  }

  // Calls onFrame(frame) for every valid request; drops lines that are not.
  listen(onFrame, onEnd) {
    const input = fs.createReadStream(null, { fd: this.ctrl, encoding: 'utf8', highWaterMark: 65536 });
    input.on('data', (chunk) => {
      this.inbuf += chunk;
      let nl;
      while ((nl = this.inbuf.indexOf('\n')) >= 0) {
        const line = this.inbuf.slice(0, nl);
        this.inbuf = this.inbuf.slice(nl + 1);
        let frame;
        try { frame = check(JSON.parse(line)); } catch { continue; }
        onFrame(frame);
      }
      if (this.inbuf.length > MAX_FRAME) this.inbuf = '';
    });
    input.on('end', onEnd);
  }
}

// Text in pieces that keep each stream frame well under the frame bound.
function pieces(text, size = 256 * 1024) {
  const out = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

module.exports = { CONTRACT, Link, check, pieces };
