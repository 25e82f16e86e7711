'use strict';
// A small JavaScript scanner for cells: where the top-level statements start and where
// `import(` is called, skipping strings, comments, templates and regular expressions.
// Enough to rewrite declarations and find the last expression; not a parser.

const WORD = /[A-Za-z0-9_$]/;
// A '/' after one of these characters (or at the start) begins a regular expression.
const REGEX_AFTER = /[(,=:[!&|?{};+\-*%<>~^]/;
const REGEX_KEYWORDS = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete',
  'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

function skipQuoted(code, i, quote) {
  for (i += 1; i < code.length; i++) {
    if (code[i] === '\\') i++;
    else if (code[i] === quote || code[i] === '\n') return i + 1;
  }
  return i;
}

function skipRegex(code, i) {
  let inClass = false;
  for (i += 1; i < code.length; i++) {
    const c = code[i];
    if (c === '\\') i++;
    else if (c === '[') inClass = true;
    else if (c === ']') inClass = false;
    else if (c === '\n') return i;
    else if (c === '/' && !inClass) break;
  }
  i += 1;
  while (i < code.length && /[a-z]/i.test(code[i])) i++;
  return i;
}

// Template text from i (inside backticks): the index after the closing backtick (popping
// it) or after a `${` (pushing it).
function skipTemplate(code, i, stack) {
  for (; i < code.length; i++) {
    if (code[i] === '\\') i++;
    else if (code[i] === '`') { stack.pop(); return i + 1; }
    else if (code[i] === '$' && code[i + 1] === '{') { stack.push('${'); return i + 2; }
  }
  return i;
}

class Scanner {
  constructor(code) {
    this.code = code;
    this.stack = [];
    this.boundaries = [{ pos: 0, weak: false }];
    this.imports = [];
    this.last = '';  // the last significant character, or word
  }

  run() {
    const code = this.code;
    let i = 0;
    while (i < code.length) {
      if (this.stack[this.stack.length - 1] === '`') { i = skipTemplate(code, i, this.stack); this.last = 'a'; continue; }
      i = this.step(i);
    }
    return this;
  }

  regexAllowed() {
    return this.last === '' || REGEX_AFTER.test(this.last) || REGEX_KEYWORDS.has(this.last);
  }

  step(i) {
    const code = this.code;
    const c = code[i];
    const top = this.stack.length === 0;
    if (c === '/' && code[i + 1] === '/') { const e = code.indexOf('\n', i); return e < 0 ? code.length : e; }
    if (c === '/' && code[i + 1] === '*') { const e = code.indexOf('*/', i + 2); return e < 0 ? code.length : e + 2; }
    if (c === '"' || c === "'") { this.last = 'a'; return skipQuoted(code, i, c); }
    if (c === '`') { this.stack.push('`'); return i + 1; }
    if (c === '/' && this.regexAllowed()) { this.last = 'a'; return skipRegex(code, i); }
    if (WORD.test(c)) return this.word(i);
    if (c === '\n' && top) this.boundaries.push({ pos: i + 1, weak: true });
    if (/\s/.test(c)) return i + 1;
    if (c === '(' || c === '[' || c === '{') this.stack.push(c);
    else if (c === ')' || c === ']' || c === '}') {
      this.stack.pop();
      if (c === '}' && this.stack.length === 0) this.boundaries.push({ pos: i + 1, weak: false });
    } else if (c === ';' && top) this.boundaries.push({ pos: i + 1, weak: false });
    this.last = c;
    return i + 1;
  }

  word(i) {
    const code = this.code;
    let j = i;
    while (j < code.length && WORD.test(code[j])) j++;
    const word = code.slice(i, j);
    if (word === 'import' && this.last !== '.' && /^\s*\(/.test(code.slice(j, j + 50))) {
      this.imports.push(i);
    }
    this.last = word;
    return j;
  }
}

function scan(code) {
  const s = new Scanner(code).run();
  return { boundaries: s.boundaries, imports: s.imports };
}

// Where the text after a boundary really starts (whitespace and comments skipped).
function skipBlank(code, i) {
  for (;;) {
    while (i < code.length && /\s/.test(code[i])) i++;
    if (code.startsWith('//', i)) { const e = code.indexOf('\n', i); i = e < 0 ? code.length : e; }
    else if (code.startsWith('/*', i)) { const e = code.indexOf('*/', i + 2); i = e < 0 ? code.length : e + 2; }
    else return i;
  }
}

module.exports = { scan, skipBlank };
