import { type Observable, Subscription } from 'rxjs';
import { type Logger, asError } from '../log.js';
import type { EntityType } from '../model.js';
import type { HubCounters } from './metrics.js';
import type { RegisterOptions, SyncItem } from './types.js';

export interface RegisterContext {
  entities$: (types?: readonly EntityType[]) => Observable<SyncItem>;
  bufferSize: number;
  counters: HubCounters;
  log: Logger;
}

/**
 * `register(types, callback)`: a consumer with its own bounded queue, drained one item at a time
 * off the pipeline's call stack. One that falls more than its buffer behind is resynchronised
 * (its backlog dropped, a fresh replay queued) instead of growing memory.
 */
export function registerWith(context: RegisterContext) {
  const { entities$, counters, log } = context;
  return (types: readonly EntityType[] | undefined, callback: (item: SyncItem) => void | Promise<void>, registerOptions: RegisterOptions = {}): Subscription => {
    const limit = registerOptions.bufferSize ?? context.bufferSize;
    const queue: SyncItem[] = [];
    let head = 0;
    let queuedEvents = 0;
    let draining = false;
    let resyncDropped: number | undefined;
    let upstream: Subscription | undefined;
    const handle = new Subscription(() => {
      upstream?.unsubscribe();
      counters.backlog -= queuedEvents;
      queuedEvents = 0;
    });

    const connect = (): void => {
      upstream = entities$(types).subscribe((item) => {
        queue.push(item);
        if (item.kind === 'event') counters.backlog += 1;
        if (item.kind === 'event' && ++queuedEvents > limit) {
          // Too far behind: drop the backlog, and replay fresh state once the callback is free.
          upstream?.unsubscribe();
          resyncDropped = queuedEvents;
          counters.backlog -= queuedEvents;
          queue.length = head = queuedEvents = 0;
          counters.resyncs += 1;
          log.warn('consumer fell behind and is resynchronised', { types, dropped: resyncDropped, bufferSize: limit });
        }
        schedule();
      });
    };
    const schedule = (): void => {
      if (!draining && !handle.closed) {
        draining = true;
        setImmediate(() => void drain());
      }
    };
    const drain = async (): Promise<void> => {
      while (!handle.closed) {
        if (head >= queue.length) {
          queue.length = head = 0;
          if (resyncDropped === undefined) break;
          const dropped = resyncDropped;
          resyncDropped = undefined;
          queue.push({ kind: 'resync', dropped });
          connect();
        }
        const item = queue[head]!;
        queue[head++] = undefined as unknown as SyncItem; // let it be collected
        if (item.kind === 'event') {
          queuedEvents -= 1;
          counters.backlog -= 1;
        }
        try {
          await callback(item);
        } catch (error) {
          counters.callbackErrors += 1;
          log.error('consumer callback failed', { types, error: asError(error) });
        }
      }
      draining = false;
    };
    connect();
    return handle;
  };
}
