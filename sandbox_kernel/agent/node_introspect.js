'use strict';
// Completion and inspection of the names in a Node cell context.

const util = require('util');
const vm = require('vm');

// Inside a call's parentheses (`Math.max(1, |`): the function being called, as IPython does.
function callee(before) {
  let depth = 0;
  for (let i = before.length - 1; i >= 0; i--) {
    const c = before[i];
    if (c === ')') depth++;
    else if (c === '(' && depth > 0) depth--;
    else if (c === '(') return (/[\w$.]*$/.exec(before.slice(0, i).trimEnd())[0] || '').replace(/^\.+|\.+$/g, '');
  }
  return '';
}

function introspection(context, reply) {
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
    reply(req, { matches, cursor_start: pos - prefix.length, cursor_end: pos, metadata: {} });
  }

  function inspect(req) {
    const code = String(req.code || '');
    const pos = Number.isInteger(req.cursor_pos) ? req.cursor_pos : code.length;
    const left = /[\w$.]*$/.exec(code.slice(0, pos))[0];
    const right = /^[\w$]*/.exec(code.slice(pos))[0];
    const name = (left + right).replace(/^\.+|\.+$/g, '') || callee(code.slice(0, pos));
    let value;
    try { value = name ? lookup(name) : undefined; } catch { value = undefined; }
    if (value === undefined) return reply(req, { found: false, data: {}, metadata: {} });
    const head = typeof value === 'function'
      ? String(value).split('\n')[0].slice(0, 300) : util.inspect(value, { depth: 2 });
    reply(req, { found: true, metadata: {},
                 data: { 'text/plain': `${name}: ${typeof value}\n${head}` } });
  }

  return { complete, inspect, lookup };
}

module.exports = { introspection };
