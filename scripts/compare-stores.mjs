// Measures the candidate state stores on the synchronizer's workload (docs/store.md): 100,000
// baseline entries written in transactions of 10,000, then 1 % of them rewritten, then a cold load
// of everything; plus the folder's size. The candidates are not dependencies; install them first:
//   npm install --no-save lmdb classic-level better-sqlite3 && node scripts/compare-stores.mjs
import { rmSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
const base = mkdtempSync(join(tmpdir(), 'compare-stores-'));
const N = 100_000, BATCH = 10_000;
const entity = (i, v = 0) => ({ key: `nova.instance:0ca13c88-108b-4f84-a588-${i.toString(16).padStart(12, '0')}`, type: 'nova.instance', id: `0ca13c88-108b-4f84-a588-${i.toString(16).padStart(12, '0')}`, name: `vm-${i}`, state: v ? 'SHUTOFF' : 'ACTIVE', project: `c5859a3ceb7840c9b49519c58e01b4${(i % 50).toString(16).padStart(2, '0')}`, parents: [{ type: 'nova.host', id: `compute-${i % 200}` }], children: [], observedAt: '2026-11-25T12:00:00.000Z', source: 'nova', attributes: { flavor: 'm1.small', image: '70a599e0-31e7-49b7-b260-868f441e862b', host: `compute-${i % 200}`, zone: 'nova', addresses: ['10.0.0.' + (i % 250)], taskState: null, powerState: 1 } });
const entry = (i, v) => ({ entity: entity(i, v), at: 1764072000000 + v, bySnapshot: true, misses: 0 });
const du = (p) => { let s = 0; for (const f of readdirSync(p)) { const st = statSync(join(p, f)); s += st.isDirectory() ? du(join(p, f)) : st.size; } return s; };
const results = [];
async function run(name, open) {
  const dir = `${base}/db-${name}`; rmSync(dir, { recursive: true, force: true });
  let db = await open(dir);
  let t = performance.now();
  for (let b = 0; b < N; b += BATCH) { const rows = []; for (let i = b; i < b + BATCH; i++) rows.push([entity(i).key, entry(i, 0)]); await db.put(rows); }
  const write = performance.now() - t;
  // second pass: 1% changed
  t = performance.now();
  for (let b = 0; b < N; b += BATCH) { const rows = []; for (let i = b; i < b + BATCH; i += 100) rows.push([entity(i).key, entry(i, 1)]); await db.put(rows); }
  const update = performance.now() - t;
  await db.close();
  const size = du(dir);
  db = await open(dir);
  t = performance.now();
  const n = await db.load();
  const load = performance.now() - t;
  await db.close();
  if (n !== N) throw new Error(name + ' loaded ' + n);
  results.push({ name, writeEntitiesPerSec: Math.round(N / write * 1000), update1pctMs: Math.round(update), loadMs: Math.round(load), bytesPerEntity: Math.round(size / N) });
}
const { open: lopen } = await import('lmdb');
await run('lmdb-msgpack', async (dir) => { const db = lopen({ path: dir, compression: false }); return { async put(rows) { await db.transaction(() => { for (const [k, v] of rows) db.put(k, v); }); }, async load() { let n = 0; for (const { value } of db.getRange()) { if (value.entity) n++; } return n; }, close: () => db.close() }; });
await run('lmdb-json', async (dir) => { const db = lopen({ path: dir, encoding: 'string' }); return { async put(rows) { await db.transaction(() => { for (const [k, v] of rows) db.put(k, JSON.stringify(v)); }); }, async load() { let n = 0; for (const { value } of db.getRange()) { if (JSON.parse(value).entity) n++; } return n; }, close: () => db.close() }; });
const { ClassicLevel } = await import('classic-level');
await run('classic-level-json', async (dir) => { const db = new ClassicLevel(dir, { valueEncoding: 'utf8' }); await db.open(); return { async put(rows) { await db.batch(rows.map(([k, v]) => ({ type: 'put', key: k, value: JSON.stringify(v) })), { sync: true }); }, async load() { let n = 0; for await (const [, v] of db.iterator()) { if (JSON.parse(v).entity) n++; } return n; }, close: () => db.close() }; });
const Database = (await import('better-sqlite3')).default;
await run('better-sqlite3-json', async (dir) => { const { mkdirSync } = await import('node:fs'); mkdirSync(dir, { recursive: true }); const db = new Database(join(dir, 'db.sqlite')); db.pragma('journal_mode = WAL'); db.pragma('synchronous = FULL'); db.exec('create table if not exists e (k text primary key, v text) without rowid'); const ins = db.prepare('insert or replace into e values (?, ?)'); const tx = db.transaction((rows) => { for (const [k, v] of rows) ins.run(k, JSON.stringify(v)); }); const all = db.prepare('select v from e'); return { async put(rows) { tx(rows); }, async load() { let n = 0; for (const r of all.iterate()) { if (JSON.parse(r.v).entity) n++; } return n; }, close: () => db.close() }; });
console.table(results);
console.log(JSON.stringify(results));
rmSync(base, { recursive: true, force: true });
