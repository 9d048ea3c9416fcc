/**
 * A full disk, for real: the state folder on a tmpfs too small for the first snapshot. The write
 * fails, so nothing is emitted or acked and `state` is reported down; once the filesystem is made
 * larger the retry writes it, then every event comes out and the observation is settled. Nothing
 * is dropped, and the process does not end (lmdb-js rejects promises nobody else would handle).
 *
 * Mounting a tmpfs needs root (CAP_SYS_ADMIN); without it the test is skipped, saying so.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Subject } from 'rxjs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createLogger } from '../../src/log.js';
import type { Entity, EntityDraft, Settlement } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { openBaselineStore } from '../../src/store/lmdb.js';
import { entity, snapshot, t } from '../support/entities.js';
import { waitFor } from '../support/wait.js';

let mounted: string | undefined;
afterEach(() => {
  if (!mounted) return;
  execFileSync('umount', ['-l', mounted]);
  rmdirSync(mounted);
  mounted = undefined;
});

/** A tmpfs of `size` at a new folder, or why it cannot be mounted here. */
function mountTmpfs(size: string): string | Error {
  const dir = mkdtempSync(join(tmpdir(), 'sync-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch (e) {
    rmdirSync(dir);
    return e instanceof Error ? e : new Error(String(e));
  }
}

describe('a full disk under state.dir', () => {
  it('emits and acks nothing while the store cannot be written, reports it down, and delivers everything once there is room', async (ctx) => {
    const mnt = mountTmpfs('256k');
    if (mnt instanceof Error) {
      const notice = `cannot mount a tmpfs (needs root): ${mnt.message.split('\n')[0]}`;
      console.warn(`SKIPPED disk-full test: ${notice}`);
      ctx.skip(true, notice);
      return;
    }
    mounted = mnt;
    const dir = join(mnt, 'state');
    const signal$ = new Subject<SourceSignal<Entity>>();
    const source = { name: 'test', types: ['nova.instance'], signal$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
    // lmdb-js prints a failed commit's error to console.error itself: it must come to our log instead.
    const consoleErrors = vi.spyOn(console, 'error');
    const logLines: Record<string, unknown>[] = [];
    const log = createLogger('debug', (line) => void logLines.push(JSON.parse(line) as Record<string, unknown>));
    const sync = createSynchronizer({ sources: [source], state: { dir }, log });
    const events: string[] = [];
    sync.entity$.subscribe((e) => events.push(e.entity.id));
    sync.start();
    // ~3000 × 300 bytes: more than the 256 KiB the filesystem holds.
    const records = Array.from({ length: 3000 }, (_, i) => entity(`vm-${i}`, 'ACTIVE', { attributes: { note: 'x'.repeat(200) } }));
    let settled: Settlement | undefined;
    signal$.next({ ...snapshot(t(0), records), settle: (s) => (settled = s) });

    await waitFor('the state reported down', () => sync.health().state?.status === 'down', 15_000);
    expect(sync.health().state?.error).toContain(`writing the state store in ${dir}`);
    expect(events).toEqual([]);
    expect(settled).toBeUndefined();
    expect(sync.unsettled()).toBe(1);
    await waitFor('lmdb-js\'s own report of the failure in our log', () => logLines.some((l) => l.msg === 'state: lmdb reported an error (the failed write reports it too)'), 5000);
    expect(consoleErrors).not.toHaveBeenCalled();
    consoleErrors.mockRestore();

    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    await waitFor('the retry to write, emit and settle', () => settled !== undefined, 20_000);
    expect(settled).toEqual({ ok: true });
    expect(events).toHaveLength(3000);
    expect(sync.health().state?.status).toBe('up');
    await sync.close();

    const store = openBaselineStore(dir);
    const loaded = store.load();
    await store.close();
    expect(loaded.state.entities.size).toBe(3000);
    expect(loaded.outbox).toEqual([]);
  }, 60_000);
});
