#!/usr/bin/env node
/**
 * `node scripts/cpuprofile-blocks.mjs FILE.cpuprofile [MIN_MS=20] [TOP=8]`: where a thread's long
 * blocks went. Groups the profile's samples into runs without an idle sample (a block: one turn's
 * work, or several turns with no wait between), and prints every run of at least MIN_MS with its
 * top frames by self time and by total time (a frame counted once per sample, wherever in the
 * stack), then the same over all long runs together. Written for the isolation benchmark's
 * ISOLATION_BENCH_PROFILE (docs/scale.md).
 */
import { readFileSync } from 'node:fs';

const [file, minArg, topArg] = process.argv.slice(2);
if (!file) throw new Error('usage: cpuprofile-blocks.mjs FILE.cpuprofile [MIN_MS] [TOP]');
const MIN_MS = Number(minArg ?? 20);
const TOP = Number(topArg ?? 8);
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
const stack = (id) => {
  const ids = [];
  for (let at = id; at !== undefined; at = parent.get(at)) ids.push(at);
  return ids;
};
const idle = (id) => byId.get(id).callFrame.functionName === '(idle)';
// The frame just under the root: one task of the event loop (a timer, an immediate, an I/O
// callback, the microtasks after it). A collection or the VM's own time is charged to the task it
// interrupted.
const taskOf = (id) => {
  const s = stack(id);
  return s.length >= 2 ? s[s.length - 2] : id;
};
const neutral = (id) => ['(garbage collector)', '(program)'].includes(byId.get(id).callFrame.functionName);

// Sample i lasts until sample i + 1.
const { samples, timeDeltas } = profile;
const times = [];
let t = profile.startTime;
for (const d of timeDeltas) times.push((t += d));
// BY_TASK=1: runs of samples of one task (see taskOf) rather than runs without idle.
const BY_TASK = process.env.BY_TASK === '1';
const runs = [];
let start = -1;
let task;
for (let i = 0; i <= samples.length; i++) {
  const s = samples[i];
  const ends = i === samples.length || idle(s) || (BY_TASK && task !== undefined && !neutral(s) && taskOf(s) !== task);
  if (ends && start >= 0) {
    const ms = (times[Math.min(i, times.length - 1)] - times[start]) / 1000;
    if (ms >= MIN_MS) runs.push({ from: start, to: i, ms });
    start = -1;
    task = undefined;
  }
  if (i < samples.length && !idle(s) && start < 0) start = i;
  if (i < samples.length && task === undefined && !idle(s) && !neutral(s)) task = taskOf(s);
}

function tops(ranges) {
  const self = new Map();
  const total = new Map();
  let ms = 0;
  for (const { from, to } of ranges) {
    for (let i = from; i < Math.min(to, times.length - 1); i++) {
      const dt = (times[i + 1] - times[i]) / 1000;
      ms += dt;
      const s = samples[i];
      self.set(label(s), (self.get(label(s)) ?? 0) + dt);
      for (const l of new Set(stack(s).map(label))) total.set(l, (total.get(l) ?? 0) + dt);
    }
  }
  const top = (m) => [...m].sort((a, b) => b[1] - a[1]).slice(0, TOP).map(([l, v]) => `    ${v.toFixed(1).padStart(7)} ms ${((100 * v) / ms).toFixed(0).padStart(3)} %  ${l}`);
  return { ms, self: top(self), total: top(total) };
}

const wall = (times.at(-1) - profile.startTime) / 1000;
process.stdout.write(`${file}: ${samples.length} samples over ${wall.toFixed(0)} ms; ${runs.length} ${BY_TASK ? 'tasks' : 'runs without idle'} of ≥ ${MIN_MS} ms\n`);
for (const r of runs) {
  const { self, total } = tops([r]);
  process.stdout.write(`\n${BY_TASK ? `task ${label(taskOf(samples[r.from + 1] ?? samples[r.from]))}` : 'run'} at ${((times[r.from] - profile.startTime) / 1000).toFixed(0)} ms: ${r.ms.toFixed(1)} ms\n  self:\n${self.join('\n')}\n  total:\n${total.join('\n')}\n`);
}
if (runs.length > 1) {
  const { ms, self, total } = tops(runs);
  process.stdout.write(`\nall ${runs.length} runs: ${ms.toFixed(0)} ms\n  self:\n${self.join('\n')}\n  total:\n${total.join('\n')}\n`);
}
