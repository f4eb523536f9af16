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
      failures.push(`  FAIL ${scenario}: ${c.id}: ${c.errorMessage || c.description || ''}`.trimEnd());
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
process.exit(problems.length > 0 ? 2 : failed > 0 ? 1 : 0);
