import { toEntity } from '../../operators/normalizeEntity.js';
import type { ChangeObservation, Entity, EntityDraft, EntityType, SnapshotObservation } from '../../src/model.js';

/** ISO time `s` seconds after a fixed origin. */
export const t = (s: number): string => new Date(Date.UTC(2026, 10, 25, 12, 0, 0) + s * 1000).toISOString();

/** A normalized entity, as normalizeEntity would make it. */
export function entity(id: string, state = 'ACTIVE', extra: Partial<EntityDraft> = {}, at = t(0), source = 'test'): Entity {
  return toEntity({ type: 'nova.instance', id, state, ...extra }, source, at);
}

export function snapshot(at: string, records: Entity[], types: EntityType[] = ['nova.instance'], extra: Partial<SnapshotObservation> = {}): SnapshotObservation {
  return { kind: 'snapshot', source: 'test', types, at, records: records.map((r) => ({ ...r, observedAt: at })), ...extra };
}

export function upsert(at: string, record: Entity): ChangeObservation {
  return { kind: 'change', source: 'bus', action: 'upsert', at, record: { ...record, observedAt: at, source: 'bus' } };
}

export function remove(at: string, record: Entity): ChangeObservation {
  return { kind: 'change', source: 'bus', action: 'delete', at, record: { ...record, observedAt: at, source: 'bus' } };
}
