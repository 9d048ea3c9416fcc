import { type OperatorFunction, Observable } from 'rxjs';
import { type Entity, type EntityDraft, type EntityRef, type Observation, entityKey } from '../src/model.js';
import { canonicalize } from '../src/hash.js';
import type { EntityMapping } from '../src/source.js';

/** A raw record that could not become an entity, and why. */
export interface InvalidRecord {
  source: string;
  reason: string;
  /** The key, when the record got far enough to have one. */
  key?: string;
  record: unknown;
}

export interface NormalizeOptions {
  /** Called for every record left out; the stream goes on. */
  onInvalid?: (invalid: InvalidRecord) => void;
  /** Keep the raw record on the entity (`Entity.raw`). Off by default: it costs memory. */
  keepRaw?: boolean;
}

class InvalidEntity extends Error {
  constructor(
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

// Low-cardinality strings (states, types, refs' types) repeat across thousands of entities:
// sharing one copy keeps the baseline small. Bounded, so a high-cardinality field can't grow it.
const internTable = new Map<string, string>();
function intern(s: string): string {
  const hit = internTable.get(s);
  if (hit !== undefined) return hit;
  // Stryker disable next-line ConditionalExpression,EqualityOperator: the bound limits memory only; an equal string is returned either way
  if (internTable.size < 10_000) internTable.set(s, s);
  return s;
}

const upperCache = new Map<string, string>();
function normalizeState(state: string): string {
  let upper = upperCache.get(state);
  // Stryker disable next-line ConditionalExpression: without the cache the same text is computed again
  if (upper === undefined) {
    upper = intern(state.trim().toUpperCase());
    // Stryker disable next-line ConditionalExpression,EqualityOperator: the bound limits memory only
    if (upperCache.size < 10_000) upperCache.set(state, upper);
  }
  return upper;
}

function isNonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}

function compareRefs(a: EntityRef, b: EntityRef): number {
  // Stryker disable next-line EqualityOperator: only reached when the types differ, where < and <= agree
  if (a.type !== b.type) return a.type < b.type ? -1 : 1;
  if (a.id < b.id) return -1;
  // Stryker disable next-line ConditionalExpression: every caller only tells < 0 from the rest (sort, `>= 0`, `!== 0` of neighbours in order)
  return a.id > b.id ? 1 : 0;
}

/** The refs of every entity that has none: one shared, frozen empty list (most have no children). */
const NO_REFS: EntityRef[] = Object.freeze([]) as unknown as EntityRef[];

function checkRefs(refs: unknown, field: 'parents' | 'children', key: string): EntityRef[] {
  if (refs === undefined || refs === null) return NO_REFS;
  if (!Array.isArray(refs)) throw new InvalidEntity(`${field} must be a list of {type, id}`, key);
  let canonical = true;
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i] as Partial<EntityRef> | null | undefined;
    if (!isNonEmptyString(r?.type) || !isNonEmptyString(r.id)) {
      throw new InvalidEntity(`${field} must be a list of {type, id} with non-empty strings, got ${JSON.stringify(r)}`, key);
    }
    if (i > 0 && compareRefs(refs[i - 1] as EntityRef, r as EntityRef) >= 0) canonical = false;
    let fields = 0;
    for (const _ in r) fields++;
    if (fields !== 2) canonical = false;
  }
  // Refs are a set: canonical order (and {type, id} only) makes the hash and the output
  // independent of API order. The usual case — already canonical — is kept as it is.
  if (refs.length === 0) return NO_REFS;
  if (canonical) return refs as EntityRef[];
  const sorted = (refs as EntityRef[]).map((r) => ({ type: intern(r.type), id: r.id })).sort(compareRefs);
  return sorted.filter((r, i) => i === 0 || compareRefs(sorted[i - 1]!, r) !== 0);
}

/**
 * Checks one draft and completes it into an Entity. Throws InvalidEntity with the reason.
 * `requireState` is false for deletes, which only need type and id.
 */
export function toEntity(draft: EntityDraft, source: string, observedAt: string, requireState = true, keepRaw = false): Entity {
  if (draft === null || typeof draft !== 'object') throw new InvalidEntity(`mapping returned ${JSON.stringify(draft)}, not an entity`);
  const { type, id, name, state, project, attributes } = draft;
  if (!isNonEmptyString(type)) throw new InvalidEntity(`type must be a non-empty string, got ${JSON.stringify(type)}`);
  if (!isNonEmptyString(id)) throw new InvalidEntity(`id of ${type} must be a non-empty string, got ${JSON.stringify(id)}`);
  const key = entityKey(type, id);
  if (state !== undefined && !isNonEmptyString(state)) throw new InvalidEntity(`state must be a non-empty string, got ${JSON.stringify(state)}`, key);
  if (state === undefined && requireState) throw new InvalidEntity('state is missing', key);
  if (name !== undefined && name !== null && typeof name !== 'string') throw new InvalidEntity(`name must be a string, got ${JSON.stringify(name)}`, key);
  if (project !== undefined && project !== null && typeof project !== 'string') {
    throw new InvalidEntity(`project must be a string, got ${JSON.stringify(project)}`, key);
  }
  if (attributes !== undefined && (attributes === null || typeof attributes !== 'object' || Array.isArray(attributes))) {
    throw new InvalidEntity('attributes must be a mapping', key);
  }
  // One literal, fields always present (undefined when unset): one object shape for every
  // entity, and the contract's field order in the JSON output (undefined members are not written).
  const entity: Entity = {
    key,
    type: intern(type),
    id,
    name: isNonEmptyString(name) ? name : undefined,
    state: state === undefined ? 'DELETED' : normalizeState(state),
    project: isNonEmptyString(project) ? intern(project) : undefined,
    parents: checkRefs(draft.parents, 'parents', key),
    children: checkRefs(draft.children, 'children', key),
    observedAt,
    source,
    attributes: attributes === undefined ? {} : canonicalize(attributes),
  };
  if (keepRaw && draft.raw !== undefined) entity.raw = draft.raw;
  return entity;
}

function drafts<R>(map: EntityMapping<R>, record: R): readonly EntityDraft[] {
  const out = map(record);
  if (out === undefined) return [];
  return Array.isArray(out) ? out : [out as EntityDraft];
}

/**
 * Turns a source's observations of raw records into observations of entities, with the source's
 * mapping.
 *
 * ```
 * source:  --s(r1,r2,bad)--c(r3)--|
 * result:  --s(E1,E2)------c(E3)--|     onInvalid(bad, reason)
 * ```
 *
 * 1. Each raw record is mapped to zero, one or several drafts, and each draft is checked and
 *    completed into an Entity (key, upper-case state, sorted refs, observedAt = the observation's
 *    `at`, source = the observation's source).
 * 2. A record whose mapping throws, or whose draft is invalid (missing id or type, non-string
 *    state, …), is reported to `onInvalid` with the reason and left out; if its key is known, a
 *    snapshot lists it in `keep`, so the bad record does not delete the entity it describes.
 * 3. A change whose record is invalid is dropped whole and settled `{ ok: false, reason }`, so a
 *    push source can set its message aside; one the mapping ignores (no drafts) is settled ok.
 * 4. An observation whose `at` is not a date is reported and dropped (settled not ok); a snapshot
 *    record whose type is not among the snapshot's `types` is invalid (it could never be deleted).
 * 5. Completes and errors with the source.
 *
 * @example
 * ```ts
 * observation$.pipe(normalizeEntity((server: Server) => ({ type: 'nova.instance', id: server.id, state: server.status })))
 * ```
 * @param map the source's mapping from a raw record to entity drafts.
 * @returns observations of valid entities only.
 */
export function normalizeEntity<R>(map: EntityMapping<R>, options: NormalizeOptions = {}): OperatorFunction<Observation<R>, Observation<Entity>> {
  const { onInvalid, keepRaw = false } = options;
  return (source$) =>
    new Observable<Observation<Entity>>((subscriber) =>
      source$.subscribe({
        next(observation) {
          if (Number.isNaN(Date.parse(observation.at))) {
            const reason = `observation time is not a date: ${JSON.stringify(observation.at)}`;
            onInvalid?.({ source: observation.source, reason, record: observation.kind === 'snapshot' ? undefined : observation.record });
            observation.settle?.({ ok: false, reason });
            return;
          }
          const report = (reason: string, record: unknown, key?: string): void =>
            onInvalid?.({ source: observation.source, reason, record, ...(key !== undefined ? { key } : {}) });
          if (observation.kind === 'snapshot') {
            const records: Entity[] = [];
            const keep: string[] = observation.keep ? [...observation.keep] : [];
            const types = new Set(observation.types);
            const add = (draft: EntityDraft, record: R): void => {
              try {
                const entity = toEntity(draft, observation.source, observation.at, true, keepRaw);
                if (!types.has(entity.type)) {
                  throw new InvalidEntity(`type ${entity.type} is not among the snapshot's types (${observation.types.join(', ')})`);
                }
                records.push(entity);
              } catch (e) {
                const key = e instanceof InvalidEntity ? e.key : undefined;
                if (key !== undefined) keep.push(key);
                report(e instanceof Error ? e.message : String(e), record, key);
              }
            };
            for (const record of observation.records) {
              let out: ReturnType<EntityMapping<R>>;
              try {
                out = map(record);
              } catch (e) {
                report(`mapping failed: ${e instanceof Error ? e.message : String(e)}`, record);
                continue;
              }
              // The common case, one draft per record, allocates no array.
              if (out === undefined) continue;
              if (Array.isArray(out)) for (const d of out as readonly EntityDraft[]) add(d, record);
              else add(out as EntityDraft, record);
            }
            const { records: _raw, keep: _keep, ...rest } = observation;
            subscriber.next({ ...rest, records, ...(keep.length > 0 ? { keep } : {}) });
            return;
          }
          let entities: Entity[];
          try {
            entities = drafts(map, observation.record).map((d) =>
              toEntity(d, observation.source, observation.at, observation.action === 'upsert', keepRaw),
            );
          } catch (e) {
            const reason = e instanceof InvalidEntity ? e.message : `mapping failed: ${e instanceof Error ? e.message : String(e)}`;
            report(reason, observation.record, e instanceof InvalidEntity ? e.key : undefined);
            observation.settle?.({ ok: false, reason });
            return;
          }
          if (entities.length === 0) {
            observation.settle?.({ ok: true });
            return;
          }
          // One record may describe several entities; the last one carries the settle hook.
          const { source, action, at, settle } = observation;
          for (let i = 0; i < entities.length; i++) {
            const change: Observation<Entity> = { kind: 'change', source, action, at, record: entities[i]! };
            if (settle && i === entities.length - 1) change.settle = settle;
            subscriber.next(change);
          }
        },
        error: (e: unknown) => subscriber.error(e),
        complete: () => subscriber.complete(),
      }),
    );
}
