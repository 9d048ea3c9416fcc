/**
 * The end of an observation's path: its events accepted by every sink, its baseline step
 * persisted, then the observation settled (a push source acks its message). Without a store an
 * observation is settled as soon as its events reached entity$'s subscribers, as before.
 *
 *   step ─▶ events to every sink ─▶ every gate passed them ─▶ group commit ─▶ settle (ack)
 *
 * Steps are committed in order and in groups: all the steps accepted while a write is in flight
 * go into the next transaction, so a burst of notifications or a 100k-entity snapshot is one
 * write, not one per entity.
 */
import type { BaselineState, BaselineStep } from '../../operators/diffAgainstBaseline.js';
import { typeMatcher } from '../../operators/ofType.js';
import { backoffDelay } from '../backoff.js';
import { type Logger, errorMessage } from '../log.js';
import type { EntityEvent, EntityType } from '../model.js';
import type { BaselineStore } from '../store/lmdb.js';
import type { HealthBoard } from './health.js';
import type { SyncItem } from './types.js';

/**
 * A sink's word on what it has taken over: `accept(x)` says that x, and everything the sink was
 * given before it, is safe with the sink (stdout written, amqp confirmed). Items are the events of
 * entity$ or the SyncItems of register; a `synced` item stands for the whole replay before it.
 */
export interface Gate {
  accept(item: SyncItem | EntityEvent): void;
  /** The sink is gone: it holds nothing back any more. */
  close(): void;
}

/** The health entry the store reports under. */
export const STATE_HEALTH = 'state';

interface Pending {
  step: BaselineStep;
  /** Sequence number of the step's first event (events are numbered from 1). */
  firstSeq: number;
}

interface GateState {
  matches: (type: EntityType) => boolean;
  passed: number;
  closed: boolean;
}

export interface CommitLine {
  /** A step whose events were just emitted, its first event numbered `firstSeq`. */
  push(step: BaselineStep, firstSeq: number): void;
  /** Numbers an event or a `synced` item, so gates can tell how far a sink got. */
  tag(item: object, seq: number): void;
  gate(types?: readonly EntityType[]): Gate;
  /** Observations emitted but not yet settled (with a store), or whose events a sink still holds (without). */
  pending(): number;
  /** Resolves once every step pushed so far passed every gate, and was persisted and settled. */
  idle(): Promise<void>;
  /** Writes nothing more; resolves once the write in flight (if any) is done, then closes the store. */
  close(): Promise<void>;
}

export interface CommitOptions {
  store: BaselineStore | undefined;
  /** The state the store holds now (what was loaded). */
  persisted: BaselineState;
  owners: () => ReadonlyMap<EntityType, string>;
  health: HealthBoard;
  log: Logger;
}

export function createCommitLine(options: CommitOptions): CommitLine {
  const { store, health, log } = options;
  const seqs = new WeakMap<object, number>();
  const gates = new Set<GateState>();
  /** Steps whose events some sink still holds, in order. */
  const waiting: Pending[] = [];
  let waitingHead = 0;
  /** Steps every sink accepted, for the next commit. */
  let ready: Pending[] = [];
  let persisted = options.persisted;
  let writing = false;
  let inFlight = 0;
  /** The highest sequence number tagged so far (the last event emitted). */
  let lastSeq = 0;
  let closed = false;
  let written: Promise<unknown> = Promise.resolve();
  let failures = 0;
  let idlers: (() => void)[] = [];

  const isIdle = (): boolean => waitingHead >= waiting.length && ready.length === 0 && !writing;
  const wakeIdlers = (): void => {
    if (!isIdle()) return;
    const w = idlers;
    idlers = [];
    for (const resolve of w) resolve();
  };

  const acceptedByAll = (p: Pending): boolean => {
    const events = p.step.events;
    for (const g of gates) {
      for (let i = events.length - 1; i >= 0; i--) {
        if (!g.matches(events[i]!.entity.type)) continue;
        if (p.firstSeq + i > g.passed) return false;
        break;
      }
    }
    return true;
  };

  const advance = (): void => {
    while (waitingHead < waiting.length && acceptedByAll(waiting[waitingHead]!)) {
      ready.push(waiting[waitingHead]!);
      waiting[waitingHead++] = undefined as unknown as Pending;
    }
    if (waitingHead === waiting.length) waiting.length = waitingHead = 0;
    commit();
  };

  const commit = (): void => {
    if (!store) {
      ready = [];
      wakeIdlers();
      return;
    }
    if (writing || closed || ready.length === 0) return;
    writing = true;
    const batch = ready;
    inFlight = batch.length;
    ready = [];
    const next = batch[batch.length - 1]!.step.state;
    // A snapshot may touch any entry of its types; a change only its own key.
    let keys: Set<string> | undefined = new Set<string>();
    for (const p of batch) {
      const o = p.step.observation;
      if (o === undefined) continue;
      if (o.kind === 'snapshot') {
        keys = undefined;
        break;
      }
      keys.add(o.record.key);
    }
    written = store.write({ prev: persisted, next, keys, owners: options.owners() }).then(
      () => {
        persisted = next;
        writing = false;
        inFlight = 0;
        if (failures > 0) {
          failures = 0;
          health.set(STATE_HEALTH, { status: 'up' });
        }
        for (const p of batch) p.step.observation?.settle?.({ ok: true });
        commit();
        wakeIdlers();
      },
      (error: unknown) => {
        // Disk full, I/O error: nothing is settled (so nothing is acked) and nothing is dropped;
        // the same steps are written again, with the ones accepted meanwhile.
        failures += 1;
        const retryInMs = backoffDelay(failures, { initialMs: 1000, maxMs: 30_000 });
        health.set(STATE_HEALTH, { status: 'down', failures, error: new Error(`writing the state store in ${store.dir}: ${errorMessage(error)}`, { cause: error }), retryInMs });
        ready = batch.concat(ready);
        inFlight = 0;
        setTimeout(() => {
          writing = false;
          commit();
        }, retryInMs).unref();
      },
    );
    log.debug('state: committing', { observations: batch.length });
  };

  return {
    push(step, firstSeq) {
      if (!store) {
        // Settled at once, as without a store it always was; still followed through the gates, so a
        // drain can wait until every sink took over what was emitted.
        step.observation?.settle?.({ ok: true });
        if (step.events.length === 0) return;
      }
      waiting.push({ step, firstSeq });
      advance();
    },
    tag(item, seq) {
      seqs.set(item, seq);
      if (seq > lastSeq) lastSeq = seq;
    },
    gate(types) {
      // What was emitted before the gate opened is not this sink's to hold back.
      const g: GateState = { matches: typeMatcher(types), passed: lastSeq, closed: false };
      gates.add(g);
      return {
        accept(item) {
          const seq = seqs.get('kind' in item && item.kind === 'event' ? item.event : item);
          if (seq === undefined || seq <= g.passed || g.closed) return;
          g.passed = seq;
          advance();
        },
        close() {
          g.closed = true;
          gates.delete(g);
          advance();
        },
      };
    },
    pending: () => waiting.length - waitingHead + ready.length + inFlight,
    idle: () => (isIdle() ? Promise.resolve() : new Promise<void>((resolve) => idlers.push(resolve))),
    async close() {
      closed = true;
      await written;
      await store?.close();
    },
  };
}
