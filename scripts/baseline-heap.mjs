// Where the baseline's bytes go: the diff benchmark's pipeline (two snapshots of N picked Nova
// servers, 1 % changed in the second, through normalizeEntity and the baseline's steps) with heap
// snapshots before and after; prints the self sizes of what the baseline retains, per entity, by
// node kind and constructor (strings by kind). Run after `npm run build`, alone, under the
// exclusive CPU lock (docs/testing.md): at 1,000,000 it needs about 4 GB and several minutes.
//
//   flock -x /tmp/cpu.lock node --expose-gc scripts/baseline-heap.mjs [N=100000] [--keep DIR]
import { createReadStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHeapSnapshot } from 'node:v8';
import { from, lastValueFrom } from 'rxjs';
import { baselineSteps } from '../dist/operators/diffAgainstBaseline.js';
import { normalizeEntity } from '../dist/operators/normalizeEntity.js';
import { serverDraft } from '../dist/sources/openstack/nova.js';
import { makePickedServers } from '../dist/test/bench/diff.js';

const n = Number(process.argv[2] ?? 100_000);
const keep = process.argv.indexOf('--keep');
const dir = keep > 0 ? process.argv[keep + 1] : mkdtempSync(join(tmpdir(), 'baseline-heap-'));
if (typeof globalThis.gc !== 'function') throw new Error('run with node --expose-gc');
const gc = () => (globalThis.gc(), globalThis.gc());

const snapshots = (first, second) => [
  { kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: '2026-11-25T12:00:00Z', records: first },
  { kind: 'snapshot', source: 'nova', types: ['nova.instance'], at: '2026-11-25T12:00:30Z', records: second },
];
// In functions, so that nothing but the returned state outlives them.
async function baseline(size) {
  const { state } = await lastValueFrom(from(snapshots(makePickedServers(size), makePickedServers(size, 100))).pipe(normalizeEntity(serverDraft), baselineSteps()));
  return state;
}

// Warm up (the interning tables and the code); its state is not kept, not even by this await.
await baseline(2000).then(() => undefined);
gc();
const before = writeHeapSnapshot(join(dir, 'before.heapsnapshot'));
const heapBefore = process.memoryUsage().heapUsed;
const state = await baseline(n);
gc();
const heapUsed = (process.memoryUsage().heapUsed - heapBefore) / n;
const after = writeHeapSnapshot(join(dir, 'after.heapsnapshot'));
if (state.entities.size !== n) throw new Error(`expected ${n} entities, got ${state.entities.size}`);

/** Self sizes by (kind, constructor), read as a stream: a snapshot of a million entities is larger than a string may be. */
async function bySelfSize(file) {
  let phase = 'head';
  let head = '';
  let fields = 0;
  let wanted = [];
  let value = 0;
  let inNumber = false;
  let field = 0;
  const nodes = []; // kind, name, self size per node
  let tail = '';
  const strings = [];
  for await (const chunk of createReadStream(file, { encoding: 'latin1', highWaterMark: 1 << 22 })) {
    let text = chunk;
    if (phase === 'head') {
      head += chunk;
      const at = head.indexOf('"nodes":[');
      if (at < 0) continue;
      const meta = JSON.parse(head.slice(head.indexOf('{"snapshot":') + 12, head.lastIndexOf('},', at) + 1)).meta;
      fields = meta.node_fields.length;
      wanted = ['type', 'name', 'self_size'].map((f) => meta.node_fields.indexOf(f));
      bySelfSize.kinds = meta.node_types[0];
      text = head.slice(at + 9);
      phase = 'nodes';
    }
    let i = 0;
    if (phase === 'nodes') {
      for (; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c >= 48 && c <= 57) {
          value = value * 10 + c - 48;
          inNumber = true;
          continue;
        }
        if (inNumber) {
          if (wanted.includes(field)) nodes.push(value);
          field = (field + 1) % fields;
          value = 0;
          inNumber = false;
        }
        if (c === 93) {
          phase = 'between';
          i++;
          break;
        }
      }
    }
    if (phase === 'between') {
      tail += text.slice(i);
      const at = tail.indexOf('"strings":');
      if (at < 0) {
        tail = tail.slice(-16);
        continue;
      }
      text = tail.slice(at + 10);
      i = 0;
      phase = 'strings';
    }
    if (phase === 'strings') strings.push(text.slice(i));
  }
  const names = JSON.parse(Buffer.from(strings.join('').trimEnd().replace(/}$/, ''), 'latin1').toString('utf8'));
  const sums = new Map();
  for (let k = 0; k < nodes.length; k += 3) {
    const kind = bySelfSize.kinds[nodes[k]];
    const key = ['object', 'array', 'hidden', 'closure', 'native', 'object shape'].includes(kind) ? `${kind} ${names[nodes[k + 1]]}` : kind;
    const sum = sums.get(key) ?? { count: 0, size: 0 };
    sum.count++;
    sum.size += nodes[k + 2];
    sums.set(key, sum);
  }
  return sums;
}

const was = await bySelfSize(before);
const rows = [];
for (const [key, sum] of await bySelfSize(after)) {
  const prior = was.get(key) ?? { count: 0, size: 0 };
  const size = (sum.size - prior.size) / n;
  if (Math.abs(size) >= 0.5) rows.push({ what: key.slice(0, 50), perEntity: Number(((sum.count - prior.count) / n).toFixed(2)), bytesPerEntity: Number(size.toFixed(1)) });
}
rows.sort((a, b) => b.bytesPerEntity - a.bytesPerEntity);
console.log(`${n} entities: heapUsed ${heapUsed.toFixed(1)} B per entity; self sizes in the heap snapshots:`);
console.table(rows);
console.log(`total ${rows.reduce((t, r) => t + r.bytesPerEntity, 0).toFixed(1)} B per entity`);
if (keep < 0) rmSync(dir, { recursive: true });
