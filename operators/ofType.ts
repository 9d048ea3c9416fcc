import { type MonoTypeOperatorFunction, filter } from 'rxjs';
import type { EntityEvent, EntityType } from '../src/model.js';

/** Anything that carries an entity: EntityEvent, or an entities$ item. */
type HasEntity = Pick<EntityEvent, 'entity'>;

/**
 * Lets through only events whose entity is of one of `types`. With no types, lets everything
 * through. A type ending in `.*` matches a whole family (`nova.*`).
 *
 * ```
 * source:  --i--p--h--|      (i: nova.instance, p: neutron.port, h: nova.host)
 * ofType('nova.instance', 'nova.host')
 * result:  --i-----h--|
 * ```
 *
 * 1. Emits the matching events unchanged and in order.
 * 2. Completes and errors with the source.
 *
 * @example
 * ```ts
 * sync.entity$.pipe(ofType('nova.instance')).subscribe((e) => console.log(e.action, e.entity.name));
 * ```
 * @param types entity types, or `family.*` patterns.
 */
export function ofType<T extends HasEntity>(...types: EntityType[]): MonoTypeOperatorFunction<T> {
  const matches = typeMatcher(types);
  return filter((event: T) => matches(event.entity.type));
}

/** A predicate for entity types: exact names, `family.*` patterns; empty matches all. */
export function typeMatcher(types: readonly EntityType[] | undefined): (type: EntityType) => boolean {
  if (!types || types.length === 0) return () => true;
  // A pattern in the set matches only a type of that very name, which its prefix matches too.
  const exact = new Set(types);
  const prefixes = types.filter((t) => t.endsWith('.*')).map((t) => t.slice(0, -1));
  // Stryker disable next-line ConditionalExpression: a shortcut; with no prefixes the general predicate is this one
  if (prefixes.length === 0) return (type) => exact.has(type);
  return (type) => exact.has(type) || prefixes.some((p) => type.startsWith(p));
}
