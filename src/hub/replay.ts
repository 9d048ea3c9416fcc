import { Observable } from 'rxjs';
import { typeMatcher } from '../../operators/ofType.js';
import type { EntityEvent, EntityType } from '../model.js';
import type { HubBaseline } from './baseline.js';
import type { SyncItem } from './types.js';

/**
 * `entities$(types)`: the current state as `replay` items, `synced`, then the changes — no gap,
 * no duplicate. `onSynced` is told the sequence number the replay holds (see the acceptance gates).
 */
export function replayOf(baseline: HubBaseline, onSynced: (item: SyncItem, seq: number) => void = () => undefined) {
  return (types?: readonly EntityType[]): Observable<SyncItem> => {
    const matches = typeMatcher(types);
    return new Observable<SyncItem>((subscriber) => {
      const current = baseline.state();
      const currentSeq = baseline.stateSeq();
      // Events that arrive while the replay is being delivered wait here, so none is lost.
      let pending: EntityEvent[] | undefined = [];
      const subscription = baseline.event$.subscribe((event) => {
        if (baseline.emittedSeq() <= currentSeq || !matches(event.entity.type)) return; // already in the replay
        if (pending) pending.push(event);
        else subscriber.next({ kind: 'event', event });
      });
      let count = 0;
      for (const entry of current.entities.values()) {
        // Stryker disable next-line ConditionalExpression: a shortcut; next() on a closed subscriber delivers nothing, and the count then tagged goes out to nobody
        if (subscriber.closed) break;
        if (!matches(entry.entity.type)) continue;
        count += 1;
        subscriber.next({ kind: 'replay', entity: entry.entity });
      }
      const synced: SyncItem = { kind: 'synced', count };
      onSynced(synced, currentSeq);
      subscriber.next(synced);
      for (let i = 0; i < pending.length && !subscriber.closed; i++) subscriber.next({ kind: 'event', event: pending[i]! });
      pending = undefined;
      return subscription;
    });
  };
}
