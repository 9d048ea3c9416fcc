import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entity, EntityDraft, Observation, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { applyObservation, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { STATE_VERSION, StateError, openBaselineStore } from '../../src/store/lmdb.js';
import { type SyncItem, type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';
import { waitFor } from '../support/wait.js';
import { toEntity } from '../../operators/normalizeEntity.js';
import { entityScope } from '../../src/scope.js';

const dirs: string[] = [];
const open_: Synchronizer[] = [];
afterEach(async () => {
  await Promise.all(open_.splice(0).map((s) => s.close()));
  dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sync-state-'));
  dirs.push(dir);
  return dir;
}

/** A source whose records are already entities; `test` polls, `bus` pushes. */
function sources(): { test$: Subject<SourceSignal<Entity>>; bus$: Subject<SourceSignal<Entity>>; list: Source<unknown>[] } {
  const test$ = new Subject<SourceSignal<Entity>>();
  const bus$ = new Subject<SourceSignal<Entity>>();
  const of = (name: string, signal$: Subject<SourceSignal<Entity>>) => ({ name, types: ['nova.instance'], signal$, map: (r: unknown) => r as EntityDraft }) as Source<unknown>;
  return { test$, bus$, list: [of('test', test$), of('bus', bus$)] };
}

function start(dir: string, s = sources()) {
  const sync = createSynchronizer({ sources: s.list, state: { dir } });
  open_.push(sync);
  const events: string[] = [];
  sync.entity$.subscribe((e) => events.push(`${e.action}:${e.entity.id}:${e.entity.state}`));
  sync.start();
  return { sync, events, ...s };
}

/** Sends an observation and resolves with its settlement. */
function send(subject: Subject<SourceSignal<Entity>>, o: Observation): Promise<Settlement> {
  return new Promise((resolve) => subject.next({ ...o, settle: resolve }));
}

const brief = (i: SyncItem): string => (i.kind === 'replay' ? `r:${i.entity.id}` : i.kind === 'synced' ? `s${i.count}` : i.kind === 'event' ? `${i.event.action}:${i.event.entity.id}` : 'resync');

describe('createSynchronizer({state})', () => {
  it('keeps the baseline across a restart: replays it, and the first snapshot emits only what changed meanwhile', async () => {
    const dir = tempDir();
    const one = start(dir);
    expect(await send(one.test$, snapshot(t(0), [entity('a'), entity('b'), entity('c')]))).toEqual({ ok: true });
    await send(one.bus$, upsert(t(1), entity('d')));
    await send(one.bus$, remove(t(2), entity('b')));
    expect(one.events).toEqual(['create:a:ACTIVE', 'create:b:ACTIVE', 'create:c:ACTIVE', 'create:d:ACTIVE', 'delete:b:ACTIVE']);
    await one.sync.close();

    const two = start(dir);
    expect(two.sync.snapshot().map((e) => e.id).sort()).toEqual(['a', 'c', 'd']);
    const replay: string[] = [];
    two.sync.entities$().subscribe((i) => replay.push(brief(i)));
    expect(replay.sort()).toEqual(['r:a', 'r:c', 'r:d', 's3']);
    // The tombstone survived: a late older notification cannot bring b back.
    await send(two.bus$, upsert(t(1.5), entity('b')));
    expect(two.events).toEqual([]);
    // While down: a changed, c deleted, e created. d came by notification and is not in the snapshot.
    await send(two.test$, snapshot(t(10), [entity('a', 'SHUTOFF'), entity('e')]));
    expect(two.events).toEqual(['update:a:SHUTOFF', 'create:e:ACTIVE', 'delete:c:ACTIVE', 'delete:d:ACTIVE']);
    expect(replay.slice(4)).toEqual(['update:a', 'create:e', 'delete:c', 'delete:d']);
    await two.sync.close();

    const three = start(dir);
    expect(three.sync.snapshot().map((e) => `${e.id}:${e.state}`).sort()).toEqual(['a:SHUTOFF', 'e:ACTIVE']);
    expect(three.sync.metrics()).toMatchObject({ entities: 2, tombstones: 3 });
  });

  it('settles an observation only once every sink accepted its events and the step is persisted', async () => {
    const dir = tempDir();
    const one = start(dir);
    const gate = one.sync.gate();
    const log: string[] = [];
    const settled = send(one.test$, snapshot(t(0), [entity('a')])).then(() => log.push('settled'));
    // Written first, then emitted (the outbox): wait for the event, not for a time.
    await waitFor('the event emitted', () => one.events.length === 1);
    expect(one.events).toEqual(['create:a:ACTIVE']);
    expect(log).toEqual([]); // the sink has not taken it over yet
    expect(one.sync.unsettled()).toBe(1);
    gate.accept(await firstEvent(one.sync, () => one.test$.next({ kind: 'health', status: 'up' })));
    await settled;
    expect(one.sync.unsettled()).toBe(0);
    await one.sync.close();
    expect(start(dir).sync.snapshot().map((e) => e.id)).toEqual(['a']);
  });

  it('writes a step before its events go out and emits them again after a stop that left them unconfirmed: no ghost', async () => {
    const dir = tempDir();
    const one = start(dir);
    // A sink that never confirms: the process dies (here: closes) with the events printed, not confirmed.
    one.sync.gate();
    const settled: Settlement[] = [];
    void send(one.test$, snapshot(t(0), [entity('a'), entity('b')])).then((s) => settled.push(s));
    void send(one.bus$, upsert(t(1), entity('a', 'SHUTOFF'))).then((s) => settled.push(s));
    await waitFor('the events emitted', () => one.events.length === 3);
    expect(one.events).toEqual(['create:a:ACTIVE', 'create:b:ACTIVE', 'update:a:SHUTOFF']);
    expect(one.sync.unsettled()).toBe(2);
    await one.sync.close();
    expect(settled).toEqual([]); // nothing acked

    // b was deleted while the process was down: the store knew it (written before it was emitted).
    const two = start(dir);
    // At least once: the unconfirmed events again, each with the entity as it is stored now.
    expect(two.events).toEqual(['create:a:SHUTOFF', 'create:b:ACTIVE', 'update:a:SHUTOFF']);
    await send(two.test$, snapshot(t(10), [entity('a', 'SHUTOFF')]));
    expect(two.events.slice(3)).toEqual(['delete:b:ACTIVE']);
    await two.sync.close();
    // Confirmed (no gate held them) and deleted: a third start emits nothing again.
    expect(start(dir).events).toEqual([]);
  });

  it('keeps the outbox in order across a restart: a delete with its entity, a create whose entity is gone since left out', async () => {
    const dir = tempDir();
    const one = applyObservation(emptyBaseline(), snapshot(t(0), [entity('a'), entity('b', 'ACTIVE', { name: 'vm-b' })]));
    const two = applyObservation(one.state, remove(t(1), entity('b')));
    const three = applyObservation(two.state, remove(t(2), entity('a')));
    const store = openBaselineStore(dir);
    store.load();
    const owners = new Map();
    await store.write({ prev: emptyBaseline(), next: one.state, keys: undefined, owners, outbox: { add: [{ id: 1, events: one.events }], remove: [] } });
    await store.write({ prev: one.state, next: three.state, keys: new Set(['nova.instance:a', 'nova.instance:b']), owners, outbox: { add: [{ id: 2, events: two.events }, { id: 3, events: three.events }], remove: [] } });
    await store.close();
    const again = openBaselineStore(dir);
    const { outbox, lastOutboxId } = again.load();
    await again.close();
    expect(lastOutboxId).toBe(3);
    expect(outbox.map((o) => [o.id, o.events.map((e) => `${e.action}:${e.entity.id}:${e.entity.name ?? ''}:${e.origin}`)])).toEqual([
      [1, []], // a and b were deleted since: their creates are left out, the deletes follow
      [2, ['delete:b:vm-b:notification']],
      [3, ['delete:a::notification']],
    ]);
    expect(outbox[1]!.events[0]).toEqual(two.events[0]); // the whole entity, and its hash
    expect(outbox[1]!.events[0]!.hash).toBe(two.events[0]!.hash);
  });

  it('keeps every entry, every field of it and the tombstones, unset fields unset, in normalizeEntity\'s shape', async () => {
    const dir = tempDir();
    const full = entity('a', 'ACTIVE', { name: 'vm-a', project: 'p1', parents: [{ type: 'nova.host', id: 'h1' }], children: [{ type: 'neutron.port', id: 'p' }], attributes: { flavor: 'm1', n: 2, nested: { x: [1, null] } } });
    let state = applyObservation(emptyBaseline(), snapshot(t(0), [full, entity('b'), entity('gone')])).state;
    state = applyObservation(state, upsert(t(5), entity('c'))).state;
    state = applyObservation(state, remove(t(6), entity('gone'))).state;
    const store = openBaselineStore(dir);
    await store.write({ prev: emptyBaseline(), next: state, keys: undefined, owners: new Map([['nova.instance', 'test']]) });
    await store.close();
    const again = openBaselineStore(dir);
    const { state: loaded, owners } = again.load();
    await again.close();
    expect(loaded.entities.toJS()).toEqual(state.entities.toJS());
    expect(loaded.tombstones.toJS()).toEqual(state.tombstones.toJS());
    expect([loaded.syncedAt.toJS(), loaded.clock, owners]).toEqual([state.syncedAt.toJS(), state.clock, new Map([['nova.instance', 'test']])]);
    const b = loaded.entities.get('nova.instance:b')!.entity;
    expect(Object.keys(b)).toEqual(Object.keys(entity('b')));
    expect([b.name, b.project]).toEqual([undefined, undefined]);
    expect(Object.isFrozen(b.parents) && b.parents === b.children).toBe(true); // one shared frozen empty list
  });

  it('keeps a scoped entry\'s scope, and writes an unscoped entry as format 2 always did (13 fields)', async () => {
    const dir = tempDir();
    const scope = entityScope('region-a');
    const host = toEntity({ type: 'nova.host', id: 'compute-01', state: 'UP' }, 'nova-a', t(0), true, false, scope);
    const vm = toEntity({ type: 'nova.instance', id: 'i', state: 'ACTIVE', parents: [{ type: 'nova.host', id: 'compute-01' }] }, 'nova-a', t(0), true, false, scope);
    let state = applyObservation(emptyBaseline(), snapshot(t(0), [host, vm], ['nova.instance', 'nova.host'], { scope: 'region-a' })).state;
    state = applyObservation(state, snapshot(t(1), [entity('plain')])).state;
    const store = openBaselineStore(dir);
    await store.write({ prev: emptyBaseline(), next: state, keys: undefined, owners: new Map([['region-a/nova.instance', 'nova-a']]) });
    await store.close();
    const again = openBaselineStore(dir);
    const { state: loaded, owners } = again.load();
    await again.close();
    expect(loaded.entities.toJS()).toEqual(state.entities.toJS());
    expect(loaded.entities.get('nova.host:region-a/compute-01')!.entity).toMatchObject({ id: 'region-a/compute-01', scope: 'region-a' });
    expect(Object.keys(loaded.entities.get('nova.instance:i')!.entity)).toEqual(Object.keys(vm));
    expect([loaded.syncedAt.toJS(), owners]).toEqual([state.syncedAt.toJS(), new Map([['region-a/nova.instance', 'nova-a']])]);
    expect(Object.keys(loaded.syncedAt.toJS()).sort()).toEqual(['nova.instance', 'region-a/nova.host', 'region-a/nova.instance']);
    const raw = open({ path: join(dir, 'baseline.mdb') });
    const entries = raw.openDB({ name: 'entities', encoding: 'json' });
    expect((entries.get('nova.instance:plain') as unknown[]).length).toBe(13);
    expect((entries.get('nova.instance:i') as unknown[]).at(-1)).toBe('region-a');
    await raw.close();
  });

  it('loads the same baseline from the log (segments not folded yet, as after a crash) as from the folded table', async () => {
    const dir = tempDir();
    const scope = entityScope('region-a');
    const scoped = toEntity({ type: 'nova.host', id: 'compute-01', state: 'UP' }, 'nova-a', t(0), true, false, scope);
    const full = entity('a', 'ACTIVE', { name: 'vm-a', project: 'p1', parents: [{ type: 'nova.host', id: 'h1' }], attributes: { flavor: 'm1', nested: { x: [1, null] }, text: 'é"\\' } });
    const one = applyObservation(emptyBaseline(), snapshot(t(0), [full, entity('b'), entity('gone'), entity('missed')]));
    const two = applyObservation(one.state, snapshot(t(1), [scoped], ['nova.host'], { scope: 'region-a' }));
    const three = applyObservation(two.state, upsert(t(2), entity('c', 'SHUTOFF')));
    const four = applyObservation(three.state, remove(t(3), entity('gone')));
    const five = applyObservation(four.state, snapshot(t(4), [full, entity('b', 'ERROR'), entity('c', 'SHUTOFF')], ['nova.instance'], { missesBeforeDelete: 2 }));
    const state = five.state;
    expect(state.entities.get('nova.instance:missed')?.misses).toBe(1); // a row unlike the header: written whole
    const store = openBaselineStore(dir);
    store.load();
    const owners = new Map([['nova.instance', 'test']]);
    await store.write({ prev: emptyBaseline(), next: two.state, keys: undefined, owners });
    await store.write({ prev: two.state, next: state, keys: undefined, owners });
    // The log as the writes left it (flushed, nothing else writes it until the next write), alone in
    // a folder: a crash before any fold.
    const logOnly = tempDir();
    copyFileSync(join(dir, 'log.mdb'), join(logOnly, 'log.mdb'));
    await store.close();
    for (const folder of [dir, logOnly]) {
      const again = openBaselineStore(folder);
      const loaded = again.load();
      await again.close();
      expect(loaded.state.entities.toJS(), folder).toEqual(state.entities.toJS());
      expect(loaded.state.tombstones.toJS(), folder).toEqual(state.tombstones.toJS());
      expect([loaded.state.syncedAt.toJS(), loaded.state.clock, loaded.owners], folder).toEqual([state.syncedAt.toJS(), state.clock, owners]);
    }
    // The log-only folder was folded at its load: its table now holds everything, and its log nothing.
    const table = open({ path: join(logOnly, 'baseline.mdb'), maxDbs: 8 });
    expect(table.openDB({ name: 'entities', encoding: 'json' }).getCount()).toBe(state.entities.size);
    await table.close();
    const log = open({ path: join(logOnly, 'log.mdb'), maxDbs: 4 });
    expect(log.openDB({ name: 'segments', encoding: 'binary' }).getCount()).toBe(0);
    await log.close();
  });

  it('migrates a format-1 store (entries as objects) in place and loads it', async () => {
    const dir = tempDir();
    const root = open({ path: join(dir, 'baseline.mdb'), maxDbs: 4 });
    const meta = root.openDB({ name: 'meta', encoding: 'json' });
    const a = { ...entity('a', 'ACTIVE', { name: 'vm-a', parents: [{ type: 'nova.host', id: 'h1' }], attributes: { flavor: 'm1' } }) } as Partial<Entity>;
    delete a.project; // JSON left unset fields out
    await meta.put('format', { format: 'synchronizer.state', version: 1 });
    await meta.put('syncedAt', { 'nova.instance': Date.parse(t(0)) });
    await meta.put('clock', Date.parse(t(3)));
    await meta.put('owners', { 'nova.instance': 'test' });
    await root.openDB({ name: 'entities', encoding: 'json' }).put('nova.instance:a', { entity: a, at: Date.parse(t(0)), bySnapshot: true, misses: 1 });
    await root.openDB({ name: 'tombstones', encoding: 'json' }).put('nova.instance:b', Date.parse(t(2)));
    await root.close();

    const store = openBaselineStore(dir);
    const { state } = store.load();
    await store.close();
    const entry = state.entities.get('nova.instance:a');
    expect(entry).toEqual({ entity: entity('a', 'ACTIVE', { name: 'vm-a', parents: [{ type: 'nova.host', id: 'h1' }], attributes: { flavor: 'm1' } }), at: Date.parse(t(0)), bySnapshot: true, misses: 1 });
    expect(state.tombstones.toJS()).toEqual({ 'nova.instance:b': Date.parse(t(2)) });
    const check = open({ path: join(dir, 'baseline.mdb'), maxDbs: 4 });
    expect(check.openDB({ name: 'meta', encoding: 'json' }).get('format')).toEqual({ format: 'synchronizer.state', version: STATE_VERSION });
    await check.close();
    expect(start(dir).sync.snapshot()).toEqual([entry!.entity]);
  });

  it('migrates a format-3 store in place: its outbox moves to log.mdb and is emitted again', async () => {
    const dir = tempDir();
    const root = open({ path: join(dir, 'baseline.mdb'), maxDbs: 8 });
    await root.openDB({ name: 'meta', encoding: 'json' }).put('format', { format: 'synchronizer.state', version: 3 });
    const a = entity('a', 'ACTIVE', { name: 'vm-a' });
    await root.openDB({ name: 'entities', encoding: 'json' }).put(a.key, [a.type, a.id, 'vm-a', 'ACTIVE', null, [], [], a.observedAt, a.source, {}, Date.parse(t(0)), 1, 0]);
    await root.openDB({ name: 'outbox', encoding: 'json' }).put(4, [['create', 's', a.key, 0]]);
    await root.close();

    const store = openBaselineStore(dir);
    const { state, outbox, lastOutboxId } = store.load();
    await store.close();
    expect(state.entities.get(a.key)?.entity).toEqual(a);
    expect([lastOutboxId, outbox.map((o) => [o.id, o.events.map((e) => `${e.action}:${e.entity.id}:${e.origin}`)])]).toEqual([4, [[4, ['create:a:snapshot']]]]);
    const check = open({ path: join(dir, 'baseline.mdb'), maxDbs: 8 });
    expect(check.openDB({ name: 'meta', encoding: 'json' }).get('format')).toEqual({ format: 'synchronizer.state', version: STATE_VERSION });
    expect(check.openDB({ name: 'outbox', encoding: 'json' }).getCount()).toBe(0);
    await check.close();
    const log = open({ path: join(dir, 'log.mdb'), maxDbs: 4 });
    expect([...log.openDB({ name: 'outbox', encoding: 'json' }).getRange()].map(({ key, value }) => [key, value])).toEqual([[4, [['create', 's', a.key, 0]]]]);
    await log.close();
  });

  it('refuses a foreign folder, a foreign LMDB file and a newer format, and changes nothing in them', async () => {
    const foreign = tempDir();
    writeFileSync(join(foreign, 'notes.txt'), 'mine');
    expect(() => createSynchronizer({ sources: [], state: { dir: foreign } })).toThrow(StateError);
    expect(() => createSynchronizer({ sources: [], state: { dir: foreign } })).toThrow(/holds files that are not the synchronizer's \(notes\.txt\)/);
    expect(readdirSync(foreign)).toEqual(['notes.txt']);

    const otherLmdb = tempDir();
    const db = open({ path: join(otherLmdb, 'baseline.mdb') });
    await db.put('user:1', { name: 'someone' });
    await db.close();
    expect(() => createSynchronizer({ sources: [], state: { dir: otherLmdb } })).toThrow(/an LMDB file but not a synchronizer state store/);

    const newer = tempDir();
    await createSynchronizer({ sources: [], state: { dir: newer } }).close();
    const root = open({ path: join(newer, 'baseline.mdb'), maxDbs: 4 });
    await root.openDB({ name: 'meta', encoding: 'json' }).put('format', { format: 'synchronizer.state', version: 99 });
    await root.close();
    expect(() => createSynchronizer({ sources: [], state: { dir: newer } })).toThrow(/written by a newer synchronizer \(format version 99/);

    const corrupt = tempDir();
    writeFileSync(join(corrupt, 'baseline.mdb'), 'this is not a database'.repeat(500));
    expect(() => createSynchronizer({ sources: [], state: { dir: corrupt } })).toThrow(StateError);
  });
});

/** The sync's last event, read back through a `synced` item taken right now (its number is the last event's). */
async function firstEvent(sync: Synchronizer, poke: () => void): Promise<SyncItem> {
  poke();
  let synced: SyncItem | undefined;
  sync.entities$().subscribe((i) => i.kind === 'synced' && (synced = i)).unsubscribe();
  return synced!;
}
