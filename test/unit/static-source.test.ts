import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject, firstValueFrom, filter } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { createSource } from '../../src/config.js';
import type { Entity, EntityDraft, SnapshotObservation } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, t, upsert } from '../support/entities.js';

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

function topology(yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'static-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'topology.yaml'), yaml);
  return dir;
}

describe('static source: `map`', () => {
  it('refuses an entry that is not a mapping, saying what it got, and passes a mapping on as it is', async () => {
    const source = await createSource({ name: 'topology', use: 'static', file: './topology.yaml', watch: false }, { configDir: topology('entities: []\n') });
    for (const entry of [null, 'vm-1', 7, [{ type: 'nova.instance', id: 'vm-1', state: 'active' }]]) {
      expect(() => source.map(entry), JSON.stringify(entry)).toThrow(`each entity must be a mapping with type, id and state, got ${JSON.stringify(entry)}`);
    }
    const draft = { type: 'nova.instance', id: 'vm-1', state: 'active' };
    expect(source.map(draft)).toBe(draft);
  });
});

describe('static source: `types`', () => {
  it('makes its snapshots complete for the listed types even when the file holds none of them', async () => {
    const dir = topology('entities:\n  - { type: nova.instance, id: vm-1, state: active }\n');
    const source = await createSource({ name: 'topology', use: 'static', file: './topology.yaml', types: ['nova.host'], watch: false }, { configDir: dir });
    expect([...source.types]).toEqual(['nova.host']);
    const first = (await firstValueFrom(source.signal$.pipe(filter((s) => s.kind === 'snapshot')))) as SnapshotObservation<unknown>;
    expect([...first.types].sort()).toEqual(['nova.host', 'nova.instance']);
    expect([...source.types].sort()).toEqual(['nova.host', 'nova.instance']);
  });

  it('so a host that another source announced, and the file lacks, is deleted; without `types` it stays', async () => {
    const run = async (types: string[] | undefined): Promise<string[]> => {
      const dir = topology('entities:\n  - { type: nova.instance, id: vm-1, state: active }\n');
      const file = await createSource({ name: 'topology', use: 'static', file: './topology.yaml', watch: false, ...(types ? { types } : {}) }, { configDir: dir });
      const bus$ = new Subject<SourceSignal<Entity>>();
      const bus = { name: 'bus', types: ['nova.host'], signal$: bus$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
      const sync = createSynchronizer({ sources: [bus, file] });
      sync.start();
      bus$.next(upsert(t(-3600), entity('compute-1', 'UP', { type: 'nova.host' })));
      const keys = new Promise<string[]>((resolve) => {
        const seen: string[] = [];
        sync.entity$.subscribe((e) => {
          seen.push(`${e.action} ${e.entity.key}`);
          if (e.entity.key === 'nova.instance:vm-1') setImmediate(() => resolve(seen));
        });
      });
      const result = await keys;
      sync.stop();
      return result;
    };
    expect(await run(['nova.host'])).toEqual(['create nova.instance:vm-1', 'delete nova.host:compute-1']);
    expect(await run(undefined)).toEqual(['create nova.instance:vm-1']);
  });
});
