/**
 * Unchanged records kept: the parts a poll source, its transport and the hub share so that a poll
 * whose records did not change since the source's last applied snapshot costs the main thread
 * next to nothing (issue 15; docs/scale.md, "Unchanged records kept").
 *
 * The parse worker remembers a digest of every picked element of a poll (by the element's id,
 * per source and request path, per poll: its `generation`). Reading the next poll, it sends only
 * the ids of elements whose digest is the one remembered for the generation it was told to
 * compare with (`base`): the snapshot that the baseline last applied for the source. The main
 * thread asks the hub for each such id's entity ({@link BaselineLookup.kept}): it is the entity
 * the element maps to, as long as the baseline's entry is still as a snapshot left it (set or
 * confirmed by a snapshot, not missed since) and that snapshot is the base. An id the hub cannot
 * vouch for is read in full (the worker holds those elements until the main thread answered).
 *
 * So a kept record is always an entity equal in meaning to what mapping the element would give
 * (rule 1), and the baseline's rules see exactly what they would without it.
 */
import type { Entity, EntityType } from './model.js';

/** A snapshot record its transport found unchanged: the baseline's own entity for it (see above). */
export class Kept {
  constructor(readonly entity: Entity) {}
}

/** What the hub lends a poll source ({@link Source.useBaseline}) so that unchanged records are kept. */
export interface BaselineLookup {
  /**
   * The generation of this source's last snapshot the baseline applied, while the baseline's
   * entries of the source's types are still only as snapshots of this source left them; undefined
   * when there is none (nothing applied yet, or the baseline was replaced or written otherwise since).
   */
  base(): number | undefined;
  /**
   * The baseline's entity of `type` and `id` (the id as the source's mapping gives it: the hub
   * qualifies it by the source's scope as it does a record's) when `base` is still what
   * {@link base} says and the entry is settled (set or confirmed by a snapshot, no misses);
   * undefined otherwise, and the record is then read in full.
   */
  kept(type: EntityType, id: string, base: number): Kept | undefined;
}

/** Given to a poll attempt's fetch (src/poll.ts) when the hub lent its source the baseline. */
export interface KeptPaging {
  /** This attempt's generation: its snapshot's `generation`. */
  readonly generation: number;
  /** The source's name: with a request's path, what the parse worker remembers elements under. */
  readonly family: string;
  readonly lookup: BaselineLookup;
}

let generations = 0;

/** A new poll attempt's generation: process-wide, never reused. */
export function nextGeneration(): number {
  generations += 1;
  return generations;
}
