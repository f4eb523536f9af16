// summarize.cjs — turns one conformance CLI run into one summary line.
//
// Usage: node summarize.cjs LABEL RESULTS_DIR OUTPUT_FILE CLI_EXIT_CODE
//
// The CLI writes one RESULTS_DIR/server-<scenario>-<timestamp>/checks.json per
// scenario it finished (an array of checks, each with a status of SUCCESS,
// FAILURE, WARNING, SKIPPED or INFO), announces "Running ... (N scenarios)"
// first and prints "Total: P passed, F failed" last. Counting the files
// ourselves, and cross-checking them against both lines and the exit code,
// catches runs that died half way as well as checks that failed.
//
// Prints "LABEL: P passed, F failed, W warnings (S scenarios)" and one line
// per failed check. Exits 0 when everything ran and nothing failed, 1 when a
// check failed, 2 when the run did not complete or does not add up.
//
// With SUMMARIZE_SCORED_ONLY=1, failures in the scenarios the CLI lists as
// not scored (extensions, pending) are shown but do not fail the run. With
// SUMMARIZE_BASELINE=FILE, a failing scenario named in FILE (one per line:
// the scenario, then the reason; # starts a comment) does not fail the run
// either — but one named there that passes does, so the file stays true.
'use strict';

const fs = require('fs');
const path = require('path');

const [label, resultsDir, outputFile, exitArg] = process.argv.slice(2);
if (!label || !resultsDir || !outputFile || exitArg === undefined) {
  console.error('usage: node summarize.cjs LABEL RESULTS_DIR OUTPUT_FILE CLI_EXIT_CODE');
  process.exit(2);
}
const cliExit = Number(exitArg);
const output = fs.existsSync(outputFile) ? fs.readFileSync(outputFile, 'utf8') : '';

// The scenarios that may fail without failing the run.
const excused = new Map(); // scenario → why
if (process.env.SUMMARIZE_SCORED_ONLY === '1') {
  const block = output.match(/^Not scored for [^\n]*\n((?:  [^\n]*\n?)*)/m);
  for (const m of (block ? block[1] : '').matchAll(/^  \S+ (\S+) \(([^)]*)\)/gm)) {
    excused.set(m[1], `not scored (${m[2]})`);
  }
}
const baseline = new Map();
if (process.env.SUMMARIZE_BASELINE) {
  for (const raw of fs.readFileSync(process.env.SUMMARIZE_BASELINE, 'utf8').split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    if (!line) continue;
    const [name, ...why] = line.split(/\s+/);
    baseline.set(name, why.join(' '));
  }
}
const failingScenarios = new Set();

const problems = [];
const failures = [];
let passed = 0;
let failed = 0;
let warnings = 0;
let scenarios = 0;

const dirs = fs.existsSync(resultsDir) ? fs.readdirSync(resultsDir, { withFileTypes: true }) : [];
for (const d of dirs) {
  if (!d.isDirectory()) continue;
  const file = path.join(resultsDir, d.name, 'checks.json');
  if (!fs.existsSync(file)) continue;
  // server-<scenario>-<ISO timestamp with dashes>
  const scenario = d.name.replace(/^server-/, '').replace(/-\d{4}-\d{2}-\d{2}T[\d-]+Z$/, '');
  let checks;
  try {
    checks = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    problems.push(`${scenario}: unreadable checks.json: ${err.message}`);
    continue;
  }
  if (!Array.isArray(checks)) {
    problems.push(`${scenario}: checks.json is not an array`);
    continue;
  }
  scenarios++;
  for (const c of checks) {
    if (c.status === 'SUCCESS') passed++;
    else if (c.status === 'WARNING') warnings++;
    else if (c.status === 'FAILURE') {
      failed++;
      failingScenarios.add(scenario);
      const why = excused.get(scenario) ?? (baseline.has(scenario) ? `baseline: ${baseline.get(scenario)}` : '');
      failures.push(`  FAIL ${scenario}: ${c.id}: ${c.errorMessage || c.description || ''}${why ? ` [excused: ${why}]` : ''}`.trimEnd());
    }
  }
}

const announced = output.match(/^Running .*\((\d+) scenarios\)/m);
if (!announced) {
  problems.push('the CLI never announced its scenarios (see its output)');
} else if (Number(announced[1]) !== scenarios) {
  problems.push(`${announced[1]} scenarios announced, ${scenarios} finished with results`);
}
const total = output.match(/^Total: (\d+) passed, (\d+) failed/m);
if (!total) {
  problems.push('the CLI printed no "Total:" line: the run did not finish');
} else if (Number(total[1]) !== passed || Number(total[2]) !== failed) {
  problems.push(`the CLI counted ${total[1]} passed, ${total[2]} failed; the result files say ${passed} passed, ${failed} failed`);
}
if (cliExit === 124 || cliExit === 137) {
  problems.push('timed out');
} else if (cliExit !== 0 && failed === 0) {
  problems.push(`the CLI exited with ${cliExit} although no check failed`);
}

let line = `${label}: ${passed} passed, ${failed} failed, ${warnings} warnings (${scenarios} scenarios)`;
const unscored = output.match(/^Not scored for [^:]+: (\d+) scenario\(s\) run, (\d+) failing/m);
if (unscored) line += `; ${unscored[2]} of ${unscored[1]} unscored scenarios failing`;
if (problems.length > 0) line += ' — INCOMPLETE';
console.log(line);
for (const f of failures) console.log(f);
for (const p of problems) console.log(`  ERROR ${p}`);
let counted = 0;
for (const name of failingScenarios) if (!excused.has(name) && !baseline.has(name)) counted++;
let stale = 0;
for (const name of baseline.keys()) {
  if (!failingScenarios.has(name)) {
    console.log(`  STALE baseline entry ${name}: it no longer fails; remove it from ${process.env.SUMMARIZE_BASELINE}`);
    stale++;
  }
}
if (excused.size > 0 || baseline.size > 0) {
  console.log(`  ${counted} failing scored scenario(s) outside the baseline`);
}
process.exit(problems.length > 0 ? 2 : counted > 0 || stale > 0 ? 1 : 0);
