#!/usr/bin/env node
/**
 * `node scripts/cpuprofile-diff.mjs A1.cpuprofile[,A2,…] B1.cpuprofile[,B2,…] [TOP=25]`: where B's
 * CPU time differs from A's, per function. Sums the non-idle samples of each group by function (self
 * time, and total time: a frame counted once per sample wherever it is in the stack), averages
 * over the group's files (rounds), and prints the functions whose time differs most, B − A, in ms
 * per round. Written for the persist benchmark's PERSIST_BENCH_PROFILE (store off vs on).
 */
import { readFileSync } from 'node:fs';

const [a, b, topArg] = process.argv.slice(2);
if (!a || !b) throw new Error('usage: cpuprofile-diff.mjs A.cpuprofile[,…] B.cpuprofile[,…] [TOP]');
const TOP = Number(topArg ?? 25);

function sums(file) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map();
  const parent = new Map();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const label = (id) => {
    const f = byId.get(id).callFrame;
    const where = f.url ? ` ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
    return `${f.functionName || '(anonymous)'}${where}`;
  };
  const self = new Map();
  const total = new Map();
  let busy = 0;
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length - 1; i++) {
    const dt = timeDeltas[i + 1] / 1000;
    const s = samples[i];
    if (byId.get(s).callFrame.functionName === '(idle)') continue;
    busy += dt;
    self.set(label(s), (self.get(label(s)) ?? 0) + dt);
    const seen = new Set();
    for (let at = s; at !== undefined; at = parent.get(at)) seen.add(label(at));
    for (const l of seen) total.set(l, (total.get(l) ?? 0) + dt);
  }
  return { busy, self, total };
}

function group(list) {
  const files = list.split(',');
  const out = { busy: 0, self: new Map(), total: new Map() };
  for (const f of files) {
    const s = sums(f);
    out.busy += s.busy / files.length;
    for (const k of ['self', 'total']) for (const [l, v] of s[k]) out[k].set(l, (out[k].get(l) ?? 0) + v / files.length);
  }
  return out;
}

const A = group(a);
const B = group(b);
process.stdout.write(`busy (not idle) per round: A ${A.busy.toFixed(0)} ms, B ${B.busy.toFixed(0)} ms, B − A ${(B.busy - A.busy).toFixed(0)} ms\n`);
for (const k of ['self', 'total']) {
  const labels = new Set([...A[k].keys(), ...B[k].keys()]);
  const rows = [...labels].map((l) => [l, A[k].get(l) ?? 0, B[k].get(l) ?? 0]).sort((x, y) => Math.abs(y[2] - y[1]) - Math.abs(x[2] - x[1]));
  process.stdout.write(`\n${k} time, ms per round (A, B, B − A):\n`);
  for (const [l, va, vb] of rows.slice(0, TOP)) process.stdout.write(`  ${va.toFixed(1).padStart(8)} ${vb.toFixed(1).padStart(8)} ${(vb - va).toFixed(1).padStart(8)}  ${l}\n`);
}
