import { watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { Observable, catchError, concat, debounceTime, defer, map, mergeMap, of, switchMap } from 'rxjs';
import { parse } from 'yaml';
import { asError, errorMessage } from '../src/log.js';
import type { EntityDraft } from '../src/model.js';
import { type SourceSignal, defineSource } from '../src/source.js';

/**
 * `use: static` — entities declared in a YAML file, re-read whenever the file changes; each read
 * is a complete snapshot. File format:
 *
 * ```yaml
 * entities:
 *   - { type: nova.zone, id: zone-a, state: available }
 *   - { type: nova.host, id: compute-1, state: up, parents: [{ type: nova.zone, id: zone-a }] }
 * ```
 */
export interface StaticOptions {
  /** The YAML file, relative to the config file. */
  file: string;
  /** Types this file is complete for, beyond those it holds (so removing the last of a type deletes it). */
  types: string[];
  /** Re-read on change (default true). */
  watch: boolean;
  /** Quiet time after a change before re-reading, ms (editors write in several steps). */
  debounceMs: number;
}

/** Reads the file; throws with the file name and what is wrong. */
async function readEntities(file: string): Promise<unknown[]> {
  const text = await readFile(file, 'utf8');
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (e) {
    throw new Error(`${file}: not valid YAML: ${errorMessage(e)}`);
  }
  if (doc === null || doc === undefined) return [];
  const entities = (doc as { entities?: unknown }).entities;
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`${file}: expected a mapping with an "entities" list`);
  if (entities === undefined || entities === null) return [];
  if (!Array.isArray(entities)) throw new Error(`${file}: "entities" must be a list`);
  return entities;
}

/** Fires on every change to `file` (the folder is watched: editors replace files by renaming). */
function fileChange$(file: string): Observable<void> {
  return new Observable<void>((subscriber) => {
    const name = basename(file);
    const watcher = watch(dirname(file), (_event, changed) => {
      if (changed === null || changed === name) subscriber.next();
    });
    watcher.on('error', (e) => subscriber.error(e));
    return () => watcher.close();
  });
}

export default defineSource({
  options: (read): StaticOptions => ({
    file: read.string('file'),
    types: read.stringList('types', []),
    watch: read.boolean('watch', true),
    debounceMs: read.duration('debounce', 100),
  }),

  create(options, { name, scheduler, configDir }) {
    const file = resolve(configDir, options.file);
    const known = new Set(options.types);
    const read$ = defer(async () => {
      const at = new Date(scheduler.now()).toISOString();
      const records = await readEntities(file);
      for (const r of records) {
        const type = (r as { type?: unknown } | null)?.type;
        if (typeof type === 'string' && type !== '') known.add(type);
      }
      return { records, at };
    }).pipe(
      map(({ records, at }): SourceSignal<unknown>[] => [
        { kind: 'health', status: 'up' },
        { kind: 'snapshot', source: name, types: [...known], at, records },
      ]),
      // A file that can't be read is not an empty file: report it, keep what we had.
      catchError((e: unknown) => of<SourceSignal<unknown>[]>([{ kind: 'health', status: 'down', error: asError(e) }])),
    );
    const trigger$ = options.watch ? concat(of(undefined), fileChange$(file).pipe(debounceTime(options.debounceMs, scheduler))) : of(undefined);
    return {
      name,
      get types() {
        return [...known];
      },
      signal$: trigger$.pipe(
        switchMap(() => read$),
        mergeMap((signals) => signals),
      ),
      map: (entry: unknown): EntityDraft => {
        if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
          throw new Error(`each entity must be a mapping with type, id and state, got ${JSON.stringify(entry)}`);
        }
        return entry as EntityDraft;
      },
    };
  },
});
