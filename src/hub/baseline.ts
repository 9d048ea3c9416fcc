import { type Observable, Subject } from 'rxjs';
import { type BaselineState, type BaselineStep, emptyBaseline } from '../../operators/diffAgainstBaseline.js';
import { typeMatcher } from '../../operators/ofType.js';
import type { Entity, EntityEvent, EntityType } from '../model.js';

/**
 * The hub's copy of the baseline (the reducer's latest state) and the hot stream of its events,
 * with sequence numbers so a late subscriber can tell which events its replay already holds.
 */
export interface HubBaseline {
  readonly event$: Observable<EntityEvent>;
  state(): BaselineState;
  /** Sequence number of the last event emitted. */
  emittedSeq(): number;
  /** Sequence number of the last event contained in `state()`. */
  stateSeq(): number;
  /** Takes a reducer step as the current state and emits its events, in order. */
  apply(step: BaselineStep, onEvent: (event: EntityEvent, seq: number) => void): void;
  /** Every current entity of `types` (default all). */
  snapshot(types?: readonly EntityType[]): Entity[];
}

export function createHubBaseline(initial: BaselineState = emptyBaseline()): HubBaseline {
  const events = new Subject<EntityEvent>();
  let state = initial;
  let emittedSeq = 0;
  let stateSeq = 0;
  return {
    event$: events.asObservable(),
    state: () => state,
    emittedSeq: () => emittedSeq,
    stateSeq: () => stateSeq,
    apply(step, onEvent) {
      // State first: a subscriber called from inside next() sees the state that holds the event.
      state = step.state;
      stateSeq = emittedSeq + step.events.length;
      for (const event of step.events) {
        emittedSeq += 1;
        onEvent(event, emittedSeq);
        events.next(event);
      }
    },
    snapshot(types) {
      const matches = typeMatcher(types);
      const out: Entity[] = [];
      for (const entry of state.entities.values()) if (matches(entry.entity.type)) out.push(entry.entity);
      return out;
    },
  };
}
