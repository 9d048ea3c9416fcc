import type { EntityType, Observation } from '../model.js';
import { scopedType } from '../scope.js';

/**
 * Entity type and scope → the one source whose snapshots are complete for it: the first to send
 * one. A second source's snapshots of that type in that scope are refused, since each would delete
 * every entity the other one wrote (DESIGN rule 7). Two clouds are two scopes: `nova.instance`
 * (unscoped), `region-a/nova.instance` and `region-b/nova.instance` have an owner each.
 */
export interface Ownership {
  /** True when `o` may go on: a change, or a snapshot of types its source owns (or nobody does yet). */
  admits(o: Observation): boolean;
  /** Type (`<scope>/<type>` when scoped) → owning source, for the store. */
  owners(): ReadonlyMap<EntityType, string>;
}

/** `refuse` is told why a snapshot was refused (the hub reports the source down and settles it). */
export function createOwnership(refuse: (o: Observation, error: string) => void, initial: Iterable<[EntityType, string]> = []): Ownership {
  const owners = new Map<EntityType, string>(initial);
  return {
    admits(o) {
      if (o.kind !== 'snapshot') return true;
      const names = o.types.map((type) => scopedType(type, o.scope));
      const clash = names.find((name) => (owners.get(name) ?? o.source) !== o.source);
      if (clash === undefined) {
        for (const name of names) owners.set(name, o.source);
        return true;
      }
      const what = o.scope === undefined ? clash : `${clash.slice(o.scope.length + 1)} in scope ${o.scope}`;
      refuse(
        o,
        `${o.source} and ${owners.get(clash)} both send complete snapshots of ${what}, so each would delete the other's entities: ` +
          `${o.source}'s snapshots are refused. Give each entity type to one poll source (its types option), or each cloud its own scope.`,
      );
      return false;
    },
    owners: () => owners,
  };
}
