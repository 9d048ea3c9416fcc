import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { open } from 'lmdb';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entity, EntityDraft, Observation, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { StateError } from '../../src/store/lmdb.js';
import { type SyncItem, type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { entity, remove, snapshot, t, upsert } from '../support/entities.js';

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
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(one.events).toEqual(['create:a:ACTIVE']);
    expect(log).toEqual([]); // the sink has not taken it over yet
    expect(one.sync.unsettled()).toBe(1);
    gate.accept(await firstEvent(one.sync, () => one.test$.next({ kind: 'health', status: 'up' })));
    await settled;
    expect(one.sync.unsettled()).toBe(0);
    await one.sync.close();
    expect(start(dir).sync.snapshot().map((e) => e.id)).toEqual(['a']);
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
