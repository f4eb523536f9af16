// node22-polyfill.cjs — preload for running the MCP conformance CLI on Node 20.
//
// Why: @modelcontextprotocol/conformance (0.1.x and the 0.2.0 pre-releases)
// does `import { globSync } from "fs"`, which exists only from Node 22. On
// Node 20 that import fails when the CLI's modules are linked, before any
// scenario runs. The CLI uses globSync only to find `**/checks.json` result
// files (tier-check), so a small correct implementation is enough.
//
// What it adds, only when fs.globSync is missing (on Node 22+ it does nothing):
//   1. fs.globSync(pattern, { cwd, exclude }): `**` (any number of
//      directories), `*` and `?` within one path segment, string or array
//      patterns; returns paths relative to cwd with "/" separators (absolute
//      for absolute patterns), like Node 22 on POSIX. Dot entries match only
//      when the pattern segment starts with a dot; symlinked directories are
//      not followed.
//   2. A module resolve/load hook (module.register, Node >= 20.6) that answers
//      ES imports of "fs"/"node:fs" with a module re-exporting node:fs plus
//      globSync: the ES view of a built-in module fixes its export names, so
//      adding a property to the CommonJS object alone is not visible to
//      `import { globSync }`.
//
// Use: NODE_OPTIONS=--require=/abs/path/to/node22-polyfill.cjs
'use strict';

const fs = require('fs');
const path = require('path');

if (typeof fs.globSync !== 'function') {
  // segmentRegExp turns one glob segment into an anchored RegExp.
  const segmentRegExp = (seg) => {
    let re = '';
    for (const ch of seg) {
      if (ch === '*') re += '[^/]*';
      else if (ch === '?') re += '[^/]';
      else re += ch.replace(/[\\^$.|+(){}[\]]/g, '\\$&');
    }
    return new RegExp('^' + re + '$');
  };

  // match walks dir (relative rel) for the remaining pattern segments.
  const match = (root, rel, segs, out) => {
    if (segs.length === 0) {
      if (rel !== '') out.add(rel);
      return;
    }
    const [seg, ...rest] = segs;
    const abs = rel === '' ? root : path.join(root, rel);
    if (seg === '**') {
      match(root, rel, rest, out); // zero directories
      for (const ent of readDir(abs)) {
        if (ent.isDirectory()) match(root, join(rel, ent.name), segs, out);
      }
      return;
    }
    if (!/[*?]/.test(seg)) {
      const next = join(rel, seg);
      if (fs.existsSync(path.join(root, next))) match(root, next, rest, out);
      return;
    }
    const re = segmentRegExp(seg);
    for (const ent of readDir(abs)) {
      if (ent.name.startsWith('.') && !seg.startsWith('.')) continue;
      if (re.test(ent.name)) match(root, join(rel, ent.name), rest, out);
    }
  };

  const join = (rel, name) => (rel === '' ? name : rel + '/' + name);

  const readDir = (dir) => {
    try {
      return fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return [];
    }
  };

  fs.globSync = function globSync(pattern, options = {}) {
    const cwd = options.cwd ? String(options.cwd) : process.cwd();
    const patterns = Array.isArray(pattern) ? pattern : [pattern];
    const out = new Set();
    for (const p of patterns) {
      const isAbs = path.isAbsolute(p);
      const root = isAbs ? '/' : cwd;
      const segs = p.split('/').filter((s) => s !== '' && s !== '.');
      const found = new Set();
      match(root, '', segs, found);
      for (const r of found) out.add(isAbs ? '/' + r : r);
    }
    let result = [...out];
    if (typeof options.exclude === 'function') {
      result = result.filter((r) => !options.exclude(r));
    }
    return result;
  };

  // The hook thread only rewrites the import; the shim module it serves runs
  // in the main thread, where fs.globSync has just been defined above.
  const shim = 'node22-polyfill:fs';
  const hooks = `
    export async function resolve(specifier, context, next) {
      if ((specifier === 'fs' || specifier === 'node:fs') && context.parentURL !== '${shim}') {
        return { url: '${shim}', shortCircuit: true };
      }
      return next(specifier, context);
    }
    export async function load(url, context, next) {
      if (url === '${shim}') {
        return {
          format: 'module',
          shortCircuit: true,
          source: "import fs from 'node:fs'; export * from 'node:fs'; export default fs; export const globSync = fs.globSync;",
        };
      }
      return next(url, context);
    }`;
  require('module').register('data:text/javascript,' + encodeURIComponent(hooks));
}
