'use strict';
// How a %%node cell becomes a script: top-level let/const/class become re-runnable
// globals (so they are completed and inspected like var), `import(...)` goes through the
// sandbox's loader (the vm has none of its own), and a cell with top-level await runs as
// an async function whose last expression, even after a `;` on one line, is its result.

const vm = require('vm');
const { scan, skipBlank } = require('./node_scan');

const IDENT = '[A-Za-z_$][\\w$]*';
const STATEMENT_START = /^(?:(?:let|const|var|function|async\s+function|class|if|for|while|do|try|switch|return|throw|import|export|break|continue)\b|[{}\])]|\*)/;
const CONTINUES_BEFORE = /[,([+\-*/%=&|?:.!<>~^]$/;
const CONTINUES_AFTER = /^[.([+\-*/%=&|?:,]|^`/;
//: The name `import(` calls are rewritten to; the runner defines it in the context.
const IMPORT = '__sandboxImport';

// Replace [start, end) ranges (sorted, non-overlapping) of code with texts.
function splice(code, edits) {
  let out = code;
  // From the end; at one start, a replacement before an insertion (which then precedes it).
  for (const [start, end, text] of [...edits].sort((a, b) => (b[0] - a[0]) || (b[1] - a[1]))) {
    out = out.slice(0, start) + text + out.slice(end);
  }
  return out;
}

// The starts of top-level statements (after ; or } or a line end), blanks skipped.
function statementStarts(code, boundaries) {
  const seen = new Set();
  const out = [];
  for (const b of boundaries) {
    const at = skipBlank(code, b.pos);
    if (at < code.length && !seen.has(at)) { seen.add(at); out.push({ at, weak: b.weak, pos: b.pos }); }
  }
  return out;
}

const DECLS = {
  classic: [
    [new RegExp(`^(?:let|const)(\\s+)`), 'var$1'],
    [new RegExp(`^class\\s+(${IDENT})`), 'var $1 = class $1'],
  ],
  async: [
    [new RegExp(`^(?:let|const|var)\\s+(${IDENT})\\s*;`), '$1 = undefined;'],
    [new RegExp(`^(?:let|const|var)\\s+(${IDENT})\\s*$`), '$1 = undefined;'],
    [new RegExp(`^(?:let|const|var)\\s+(${IDENT})\\s*=`), '$1 ='],
    [new RegExp(`^(?:let|const)(\\s+[[{])`), 'var$1'],
    [new RegExp(`^(async\\s+)?function(\\s*\\*?\\s*)(${IDENT})`), '$3 = $1function$2$3'],
    [new RegExp(`^class\\s+(${IDENT})`), '$1 = class $1'],
  ],
};

function declarationEdits(code, starts, rules) {
  const edits = [];
  for (const { at } of starts) {
    const lineEnd = code.indexOf('\n', at);
    const rest = code.slice(at, lineEnd < 0 ? code.length : lineEnd);
    for (const [re, replacement] of rules) {
      const m = re.exec(rest);
      if (m) { edits.push([at, at + m[0].length, m[0].replace(re, replacement)]); break; }
    }
  }
  return edits;
}

function importEdits(imports) {
  return imports.map((i) => [i, i + 'import'.length, IMPORT]);
}

function classic(code) {
  const { boundaries, imports } = scan(code);
  const starts = statementStarts(code, boundaries);
  return splice(code, [...declarationEdits(code, starts, DECLS.classic), ...importEdits(imports)]);
}

// The start of the last top-level statement, if it is an expression; else -1.
function lastExpression(code, starts) {
  for (let k = starts.length - 1; k >= 0; k--) {
    const s = starts[k];
    if (s.weak && k > 0) {
      const before = code.slice(0, s.pos).trimEnd();
      if (CONTINUES_BEFORE.test(before) || CONTINUES_AFTER.test(code.slice(s.at))) continue;
    }
    const text = code.slice(s.at);
    return STATEMENT_START.test(text) || text.startsWith('//') ? -1 : s.at;
  }
  return -1;
}

function asyncWrapped(code, withResult = true) {
  const { boundaries, imports } = scan(code);
  const starts = statementStarts(code, boundaries);
  const edits = [...declarationEdits(code, starts, DECLS.async), ...importEdits(imports)];
  const at = withResult ? lastExpression(code, starts) : -1;
  if (at >= 0 && !edits.some(([s, e]) => s === at && e > s && !code.startsWith('import', s))) {
    const end = code.trimEnd().replace(/;$/, '').length;
    edits.push([at, at, 'return (\n'], [end, code.length, '\n);']);
  }
  return `(async () => {${splice(code, edits)}\n})()`;
}

function compile(code, filename) {
  try {
    return { script: new vm.Script(classic(code), { filename }), async: false };
  } catch (e) {
    if (!(e instanceof SyntaxError) || !/\bawait\b/.test(code)) throw e;
    let last = e;
    // With the last statement as the result; if it was not one expression, without.
    for (const withResult of [true, false]) {
      try {
        return { script: new vm.Script(asyncWrapped(code, withResult), { filename }), async: true };
      } catch (e2) {
        if (!(e2 instanceof SyntaxError)) throw e2;
        last = e2;
      }
    }
    // A real syntax error: the async version's when the first was only about await.
    throw /await is only valid|Unexpected reserved word/.test(e.message) ? last : e;
  }
}

module.exports = { classic, asyncWrapped, compile, IMPORT };
