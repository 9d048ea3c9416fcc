#!/usr/bin/env node
/**
 * Holds each part of the mutation scope to its target (stryker.config.mjs, `mutationTargets`):
 * reads Stryker's JSON reports (reports/mutation/*.json: the whole run's and those of
 * MUTATE_ONLY runs, the newest report for each file), prints a table per part and per file, and exits 1 when a part is
 * below its target or a mutated file falls under no target. Stryker's own `break` threshold is
 * one figure for the whole run, which would let a weak folder hide behind a strong one.
 *
 *   node scripts/mutation-score.mjs [REPORT.json ...]
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mutationTargets } from '../stryker.config.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const folder = resolve(root, 'reports/mutation');
const reportFiles =
  process.argv.length > 2
    ? process.argv.slice(2).map((f) => resolve(f))
    : readdirSync(folder)
        .filter((f) => f.endsWith('.json'))
        .map((f) => join(folder, f));
if (reportFiles.length === 0) throw new Error('no mutation report: run `npm run mutate` first');
// Oldest first, so a newer report's entry for a file replaces an older one.
const files = {};
for (const f of reportFiles.sort((a, b) => statSync(a).mtimeMs - statSync(b).mtimeMs)) Object.assign(files, JSON.parse(readFileSync(f, 'utf8')).files);

const STATUSES = ['Killed', 'Timeout', 'Survived', 'NoCoverage', 'CompileError', 'RuntimeError', 'Ignored'];
const empty = () => Object.fromEntries(STATUSES.map((s) => [s, 0]));

/** The target a file falls under: the longest matching key (a folder ends in `/`). */
function targetOf(file) {
  const keys = Object.keys(mutationTargets).filter((k) => (k.endsWith('/') ? file.startsWith(k) : file === k));
  return keys.sort((a, b) => b.length - a.length)[0];
}

/** Stryker's mutation score: detected (killed, timeout) over valid (detected, survived, no coverage). */
function score(c) {
  const detected = c.Killed + c.Timeout;
  const valid = detected + c.Survived + c.NoCoverage;
  return valid === 0 ? 100 : (100 * detected) / valid;
}

const byFile = new Map();
const byPart = new Map(Object.keys(mutationTargets).map((k) => [k, empty()]));
const orphans = [];
for (const [name, file] of Object.entries(files)) {
  const path = relative(root, resolve(root, name)).split('\\').join('/');
  const counts = empty();
  for (const m of file.mutants) counts[m.status] = (counts[m.status] ?? 0) + 1;
  byFile.set(path, counts);
  const part = targetOf(path);
  if (part === undefined) {
    orphans.push(path);
    continue;
  }
  for (const s of STATUSES) byPart.get(part)[s] += counts[s];
}

const row = (label, c, target) =>
  [
    label.padEnd(44),
    ...['Killed', 'Survived', 'Timeout', 'NoCoverage', 'CompileError'].map((s) => String(c[s]).padStart(8)),
    score(c).toFixed(2).padStart(8),
    target === undefined ? '' : `${score(c) >= target ? '  ok' : '  BELOW'} ${target}`,
  ].join(' ');
const header = ['part / file'.padEnd(44), ...['killed', 'survived', 'timeout', 'no cov', 'compile'].map((s) => s.padStart(8)), 'score %'.padStart(8), '  target'].join(' ');

console.log(header);
let failed = false;
for (const [part, counts] of byPart) {
  const target = mutationTargets[part];
  if (score(counts) < target) failed = true;
  if (Object.values(counts).every((n) => n === 0)) {
    failed = true;
    console.log(`${part.padEnd(44)} no mutants in any report: run \`npm run mutate\``);
    continue;
  }
  console.log(row(part, counts, target));
  for (const [path, c] of [...byFile].filter(([p]) => targetOf(p) === part).sort(([a], [b]) => a.localeCompare(b))) console.log(row(`  ${path}`, c));
}
const total = empty();
for (const c of byFile.values()) for (const s of STATUSES) total[s] += c[s];
console.log(row('all', total));
if (orphans.length > 0) {
  failed = true;
  console.error(`mutated files under no target in stryker.config.mjs mutationTargets: ${orphans.join(', ')}`);
}
if (failed) {
  console.error('mutation score below target: see the table above (survivors: reports/mutation/*.html)');
  process.exit(1);
}
