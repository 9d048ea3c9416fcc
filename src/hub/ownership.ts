import type { EntityType, Observation } from '../model.js';

/**
 * Entity type → the one source whose snapshots are complete for it: the first to send one. A
 * second source's snapshots of that type are refused, since each would delete every entity the
 * other one wrote — two clouds polled into one hub, for instance (DESIGN rule 7).
 */
export interface Ownership {
  /** True when `o` may go on: a change, or a snapshot of types its source owns (or nobody does yet). */
  admits(o: Observation): boolean;
  /** Type → owning source, for the store. */
  owners(): ReadonlyMap<EntityType, string>;
}

/** `refuse` is told why a snapshot was refused (the hub reports the source down and settles it). */
export function createOwnership(refuse: (o: Observation, error: string) => void, initial: Iterable<[EntityType, string]> = []): Ownership {
  const owners = new Map<EntityType, string>(initial);
  return {
    admits(o) {
      if (o.kind !== 'snapshot') return true;
      const clash = o.types.find((type) => (owners.get(type) ?? o.source) !== o.source);
      if (clash === undefined) {
        for (const type of o.types) owners.set(type, o.source);
        return true;
      }
      refuse(
        o,
        `${o.source} and ${owners.get(clash)} both send complete snapshots of ${clash}, so each would delete the other's entities: ` +
          `${o.source}'s snapshots are refused. Give each entity type to one poll source (its types option).`,
      );
      return false;
    },
    owners: () => owners,
  };
}
