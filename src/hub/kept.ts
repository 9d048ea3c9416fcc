/**
 * The hub's side of unchanged records kept (src/kept.ts; docs/scale.md, "Unchanged records kept"):
 * one {@link BaselineLookup} per source that asks for it, which says which snapshot of the source
 * the baseline last applied (`base`) and vouches for the entities that snapshot left.
 *
 * Why a kept record is exact: at the moment `kept` answers, the entry is settled (written or
 * confirmed by a snapshot, not missed since), its entity is this source's (name and scope), and
 * the last snapshot of this source the reducer applied is `base`. Only snapshot steps write
 * settled entries, and one of another source writes its own name (or, confirming an entry, finds
 * its meaning equal to a record of its own scope: only the owner of a type and scope sends its
 * snapshots, rule 7). So `base` wrote the entry or found it equal in meaning to its record for
 * that key, unless it left the entry alone: an entry it held as newer (rule 4: refused when
 * `base` is older than an earlier snapshot of its types, see `applied`), one it kept because its
 * record was invalid (its `keep`: refused), one of a type it was not about (refused). Either way
 * the entity is equal in meaning to the record mapping the element `base` read gives, and so to
 * mapping today's element, which the transport found unchanged. What happens after the answer
 * does not matter: the record is that entity, restamped with its own snapshot's time and source
 * wherever the step writes it (operators/standIns.ts).
 */
import { type BaselineState, type BaselineStep, entryOf } from '../../operators/diffAgainstBaseline.js';
import { type BaselineLookup, Kept } from '../kept.js';
import { type EntityType, type SnapshotObservation, entityKey } from '../model.js';
import { type EntityScope, qualifiedId, scopedType } from '../scope.js';

/** The lookup the hub lends one source, and what the hub tells it. */
export interface HubLookup extends BaselineLookup {
  /** A step of a snapshot of this source, as the reducer took it (synchronously, before the next). */
  applied(step: BaselineStep): void;
  /** The reducer starts from another baseline (the hub's start, a restore): nothing is vouched for until the source's next snapshot. */
  reset(): void;
}

const NONE: ReadonlySet<string> = new Set();

/**
 * The lookup of source `name` (its `scope` qualifying local types' ids as normalizeEntity does),
 * reading the reducer's latest baseline through `state` (undefined while the hub is stopped).
 */
export function createBaselineLookup(name: string, scope: EntityScope | undefined, state: () => BaselineState | undefined): HubLookup {
  const scopeName = scope?.name;
  let base: number | undefined;
  /** The base snapshot's types, and the keys it held but could not map (left as they were). */
  let types: ReadonlySet<EntityType> = NONE;
  let keptOut: ReadonlySet<string> = NONE;
  const forget = (): void => {
    base = undefined;
    types = NONE;
    keptOut = NONE;
  };
  return {
    base: () => base,
    // Up to 100,000 calls per poll on the main thread: a few lookups, and only the Kept allocated
    // (with the key's string).
    kept(type, id, asked) {
      if (asked !== base || !types.has(type)) return undefined;
      const now = state();
      if (now === undefined) return undefined;
      const key = entityKey(type, scope !== undefined && scope.isLocal(type) ? qualifiedId(scope.name, id) : id);
      // Stryker disable next-line ConditionalExpression: a shortcut: an empty set has no key
      if (keptOut.size > 0 && keptOut.has(key)) return undefined;
      const entry = entryOf(now, key);
      if (entry === undefined || !entry.bySnapshot || entry.misses !== 0) return undefined;
      const entity = entry.entity;
      if (entity.source !== name || entity.scope !== scopeName) return undefined;
      return new Kept(entity);
    },
    applied(step) {
      const o = step.observation;
      // Stryker disable next-line ConditionalExpression: the hub tells it of snapshots only
      if (o?.kind !== 'snapshot') return;
      if (o.generation === undefined || !newest(step.state, o)) return forget();
      base = o.generation;
      types = new Set(o.types);
      keptOut = new Set(o.keep);
    },
    reset: forget,
  };
}

/**
 * Whether `snapshot` is the newest of its types and scope the baseline applied: a snapshot older
 * than an earlier one (a clock set back) leaves the entries that earlier one vouches for as newer
 * (rule 4), whatever its records say, so it cannot vouch for them.
 */
function newest(state: BaselineState, snapshot: SnapshotObservation): boolean {
  const at = Date.parse(snapshot.at);
  return snapshot.types.every((type) => state.syncedAt.get(scopedType(type, snapshot.scope)) === at);
}
