import { type Observable, type SchedulerLike, filter, map, tap } from 'rxjs';
import { type InvalidRecord, type SliceOptions, normalizeEntity } from '../../operators/normalizeEntity.js';
import { recordsWhere } from '../../operators/standIns.js';
import { type BackoffOptions, retryWithBackoff } from '../backoff.js';
import { type Logger, asError } from '../log.js';
import { type EntityType, type Observation, type SnapshotObservation, unreachable } from '../model.js';
import type { HealthSignal, Source, SourceSignal } from '../source.js';
import { entityScope } from '../scope.js';
import type { HealthBoard } from './health.js';
import type { Ownership } from './ownership.js';

export interface IntakeOptions {
  health: HealthBoard;
  /** Types whose ids a scope qualifies, beyond src/scope.ts's LOCAL_TYPES (every source's `localTypes`). */
  localTypes: readonly EntityType[];
  ownership: Ownership;
  /** Is this entity type active? */
  active: (type: EntityType) => boolean;
  onInvalid: (record: InvalidRecord) => void;
  retry: BackoffOptions;
  keepRaw: boolean;
  /** Normalize big snapshots in slices (see src/hub/slicing.ts). */
  slice?: SliceOptions;
  /** Reads a big snapshot's records against the baseline as they are normalized (see src/hub/slicing.ts). */
  prepare?: (normalized: SnapshotObservation) => void;
  scheduler: SchedulerLike;
  log: Logger;
}

function isHealth<R>(signal: SourceSignal<R>): signal is HealthSignal {
  return signal.kind === 'health';
}

/** Drops what is not active; an observation with nothing left is settled at once. */
function onlyActive(o: Observation, active: (type: EntityType) => boolean): Observation | undefined {
  switch (o.kind) {
    case 'snapshot': {
      const types = o.types.filter(active);
      // Stryker disable next-line ConditionalExpression: a shortcut; the copy would hold the same types and records
      if (types.length === o.types.length) return o;
      if (types.length === 0) {
        o.settle?.({ ok: true });
        return undefined;
      }
      // Stand-ins (a kept record, operators/standIns.ts) still stand in for their records in the copy.
      return { ...o, types, records: recordsWhere(o, (r) => active(r.type)) };
    }
    case 'change':
    case 'patch':
      if (active(o.record.type)) return o;
      o.settle?.({ ok: true });
      return undefined;
    // Stryker disable next-line ConditionalExpression: an exhaustiveness guard (`never`): no observation reaches it
    default:
      // Stryker disable next-line StringLiteral: the same guard
      return unreachable(o, 'observation');
  }
}

/**
 * One source's way into the baseline: retried with backoff for ever (its health reported), its
 * records normalized (and qualified by its scope, if it has one), inactive types dropped, and snapshots of types another source owns refused.
 */
export function observationsOf(source: Source<unknown>, options: IntakeOptions): Observable<Observation> {
  const { health, ownership, active, log } = options;
  return source.signal$.pipe(
    tap({
      complete: () => log.info('source completed', { source: source.name }),
    }),
    retryWithBackoff<SourceSignal<unknown>>({
      ...options.retry,
      scheduler: options.scheduler,
      onRetry: ({ error, delayMs }) => health.signal(source.name, { kind: 'health', status: 'down', error: asError(error), retryInMs: delayMs }),
    }),
    filter((signal): signal is Observation<unknown> => {
      if (!isHealth(signal)) return true;
      health.signal(source.name, signal);
      return false;
    }),
    // The source's name is what entities carry, whatever the plugin wrote.
    // Stryker disable next-line ConditionalExpression: a shortcut; a copy with the same name is equal
    map((o) => (o.source === source.name ? o : { ...o, source: source.name })),
    normalizeEntity(source.map, {
      keepRaw: options.keepRaw,
      onInvalid: options.onInvalid,
      ...(options.slice ? { slice: options.slice } : {}),
      ...(options.prepare ? { prepare: options.prepare } : {}),
      ...(source.scope === undefined ? {} : { scope: entityScope(source.scope, options.localTypes) }),
    }),
    map((o) => onlyActive(o, active)),
    filter((o): o is Observation => o !== undefined && ownership.admits(o)),
  );
}
