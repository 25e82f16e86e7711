'use strict';
// What a cell may ask of its process: `process.exit(n)` ends the cell with its code (the
// interpreter and its variables stay, as SystemExit leaves IPython), and `import(...)`
// loads a module as `require` would find it (the cell's directory, NODE_PATH), builtins
// and ES modules included.

const path = require('path');
const { isBuiltin } = require('module');
const { pathToFileURL } = require('url');

class ProcessExit extends Error {
  constructor(code) {
    super(`process.exit(${code}) was called`);
    this.name = 'ProcessExit';
    this.exitCode = code;
  }
}

// Replace process.exit for cells; returns the real one (for the worker's own exit).
function catchExit(proc) {
  const real = proc.exit.bind(proc);
  proc.exit = function exit(code) {
    const value = code === undefined ? proc.exitCode : code;
    throw new ProcessExit(Number.isInteger(Number(value)) ? Number(value) : 0);
  };
  return real;
}

function exitFrame(e) {
  return { type: 'error', ename: 'ProcessExit', evalue: `exit code ${e.exitCode}`,
           traceback: [`ProcessExit: the cell called process.exit(${e.exitCode}) and stopped ` +
                       'there (exit code ' + e.exitCode + '); the interpreter and its ' +
                       'variables are kept'] };
}

// `import(specifier)` for cells, resolved like the cell's `require`.
function importer(userRequire, cwd) {
  return function sandboxImport(specifier) {
    const spec = String(specifier);
    if (isBuiltin(spec) || /^[a-z][a-z0-9+.-]*:/i.test(spec)) return import(spec);
    let target;
    try {
      target = pathToFileURL(userRequire.resolve(spec)).href;
    } catch (e) {
      if (e && e.code === 'MODULE_NOT_FOUND' && !/^\.{0,2}\//.test(spec)) {
        const err = new Error(`Cannot find module '${spec}' (from ${cwd} or NODE_PATH)`);
        err.code = 'ERR_MODULE_NOT_FOUND';
        return Promise.reject(err);
      }
      // An ES module without a `require` export, or a relative file: by path, else as given.
      target = /^\.{0,2}\//.test(spec) ? pathToFileURL(path.resolve(cwd, spec)).href : spec;
    }
    return import(target);
  };
}

module.exports = { ProcessExit, catchExit, exitFrame, importer };
