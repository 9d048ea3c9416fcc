/**
 * The cluster's one stream out: every instance publishes its events to the cluster's exchange,
 * each message stamped with the instance that published it and the time of the observation that
 * produced it. A consumer binds one queue to the exchange and applies the messages with
 * {@link applyClusterEvent}, which drops the stale duplicates a handover can produce (the old and
 * the new owner of a source both reporting the same entity).
 */
import { entityHash } from '../hash.js';
import type { Entity } from '../model.js';

/** Header: the id of the instance that published the message. */
export const INSTANCE_HEADER = 'x-synchronizer-instance';
/** Header: ISO time of the observation the message's entity state comes from (for a delete: when it was seen gone). */
export const OBSERVED_AT_HEADER = 'x-synchronizer-observed-at';

/** One message of the cluster's exchange, as a consumer reads it. */
export interface ClusterEvent {
  /** `replay`: a publisher's current state at its start, to be taken as an upsert. */
  action: 'create' | 'update' | 'delete' | 'replay';
  entity: Entity;
  instance: string;
  observedAt: string;
}

/** What a consumer holds: the current entities, and per key the time of the last message applied. */
export interface ClusterView {
  entities: Map<string, Entity>;
  /** Per entity key: observation time (ms) and meaning hash of the last message applied (a delete included). */
  last: Map<string, { at: number; hash: string | undefined }>;
}

export function emptyClusterView(): ClusterView {
  return { entities: new Map(), last: new Map() };
}

/** What {@link applyClusterEvent} did with a message. */
export type ClusterEventOutcome = { applied: true } | { applied: false; reason: 'stale' | 'duplicate' };

/**
 * Reads a message of the cluster's exchange: its JSON body (an event line or a replay item) and the
 * two headers. Undefined for the stream's markers (`synced`, `resync`) and for what is not the
 * synchronizer's.
 */
export function readClusterEvent(body: Buffer | string, headers: Record<string, unknown> | undefined): ClusterEvent | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(typeof body === 'string' ? body : body.toString('utf8'));
  } catch {
    return undefined;
  }
  const d = doc as { kind?: unknown; action?: unknown; entity?: unknown } | null;
  if (d === null || typeof d !== 'object' || typeof d.entity !== 'object' || d.entity === null) return undefined;
  const entity = d.entity as Entity;
  if (typeof entity.key !== 'string' || typeof entity.type !== 'string' || typeof entity.id !== 'string') return undefined;
  const action = d.kind === 'replay' ? 'replay' : d.action;
  if (action !== 'create' && action !== 'update' && action !== 'delete' && action !== 'replay') return undefined;
  const instance = headers?.[INSTANCE_HEADER];
  const observedAt = headers?.[OBSERVED_AT_HEADER];
  return {
    action,
    entity,
    instance: typeof instance === 'string' ? instance : '',
    observedAt: typeof observedAt === 'string' ? observedAt : entity.observedAt,
  };
}

/**
 * The consumer's rule for the cluster's stream (DESIGN rule 4 across instances): a message about
 * an entity is applied unless the view already applied one about that entity observed later
 * (`stale`: an older observation, e.g. from the old owner during a handover), or one observed at
 * the same time with the same meaning (`duplicate`: the same state published twice, by two owners
 * or by a replay). Creates, updates and replays set the entity; deletes remove it.
 *
 * 1. Per entity key the view keeps the observation time and hash of the last message applied,
 *    deletes included, so a late create cannot bring a deleted entity back.
 * 2. Equal times with different meanings: the later message wins (the stream's order).
 * 3. It mutates `view` and says what it did; it never throws on a well-formed event.
 *
 * @example
 * ```ts
 * const view = emptyClusterView();
 * channel.consume(queue, (m) => {
 *   const e = m && readClusterEvent(m.content, m.properties.headers);
 *   if (e && !applyClusterEvent(view, e).applied) duplicates += 1;
 *   if (m) channel.ack(m);
 * });
 * ```
 */
export function applyClusterEvent(view: ClusterView, event: ClusterEvent): ClusterEventOutcome {
  const key = event.entity.key;
  const at = Date.parse(event.observedAt);
  const prev = view.last.get(key);
  const hash = event.action === 'delete' ? undefined : entityHash(event.entity);
  if (prev !== undefined && !Number.isNaN(at)) {
    if (at < prev.at) return { applied: false, reason: 'stale' };
    if (at === prev.at && hash === prev.hash) return { applied: false, reason: 'duplicate' };
  }
  view.last.set(key, { at: Number.isNaN(at) ? (prev?.at ?? 0) : at, hash });
  if (event.action === 'delete') view.entities.delete(key);
  else view.entities.set(key, event.entity);
  return { applied: true };
}
