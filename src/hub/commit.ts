/**
 * The path of an observation's step after the reducer. With a state store, an outbox:
 *
 *   step ─▶ group write (the step, and its events as an outbox entry) ─▶ events emitted to every sink
 *        ─▶ every gate passed them ─▶ settle (ack) ─▶ the outbox entry deleted (next write)
 *
 * The step is written before its events go out, so the store always knows at least what a sink
 * may have seen: after a kill -9 the outbox entries still there are emitted again at start (at
 * least once), and the first snapshot can report the deletion of an entity that was emitted just
 * before the crash. Without a store a step is emitted and settled at once, as before; its events
 * are still followed through the gates so that a drain can wait for the sinks.
 *
 * Writes are grouped: every step taken and every outbox entry confirmed while a write is in flight
 * go into the next transaction, so a burst of notifications or a 100k-entity snapshot is one
 * write, not one per entity.
 */
import { mark } from '../marks.js';
import type { BaselineState, BaselineStep } from '../../operators/diffAgainstBaseline.js';
import { typeMatcher } from '../../operators/ofType.js';
import { backoffDelay } from '../backoff.js';
import { type Logger, errorMessage } from '../log.js';
import type { EntityEvent, EntityType, Observation } from '../model.js';
import type { BaselineStore, OutboxEntry } from '../store/lmdb.js';
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

/**
 * Snapshots taken but not yet written past which newer ones are not taken (backpressure): while
 * the store fails (or cannot keep up), every poll would otherwise add a step holding all its
 * records. A snapshot left out is harmless (the next poll brings the whole state again); changes
 * are still taken, as their transports bound them (AMQP prefetch: unacked until written).
 */
export const MAX_UNWRITTEN_SNAPSHOTS = 4;

/**
 * Bytes written to the store's log and not yet folded into its table past which snapshots are not
 * taken either (the same backpressure): a fold that fails or lags would otherwise let the log grow
 * without bound. About ten first snapshots of 100,000 Nova servers.
 */
export const MAX_UNFOLDED_BYTES = 512 * 1024 * 1024;

/** A step emitted, waiting for the gates. */
interface Emitted {
  step: BaselineStep;
  /** Sequence number of the step's first event (events are numbered from 1). */
  firstSeq: number;
  /** Its outbox entry, if it was written with one. */
  outboxId: number | undefined;
}

/** A step taken, to be written (with a store) before it is emitted. */
interface Taken {
  step: BaselineStep;
  outboxId: number | undefined;
}

interface GateState {
  matches: (type: EntityType) => boolean;
  passed: number;
  closed: boolean;
}

export interface CommitLine {
  /**
   * Whether the hub may take this observation now: false for a snapshot while
   * {@link MAX_UNWRITTEN_SNAPSHOTS} (or the option's limit) wait to be written; said in the
   * state's health and the log. A snapshot left out is not settled, like a failed poll.
   */
  admits(observation: Observation): boolean;
  /** A reducer step: written (with a store), then emitted, then settled once every gate passed its events. */
  push(step: BaselineStep): void;
  /**
   * The outbox entries the store held at start, emitted again (before any source runs); each is
   * deleted once every gate passed its events. Returns the number of events emitted.
   */
  reemit(entries: readonly OutboxEntry[]): number;
  /** Numbers an event or a `synced` item, so gates can tell how far a sink got. */
  tag(item: object, seq: number): void;
  gate(types?: readonly EntityType[]): Gate;
  /** Observations taken but not yet settled: waiting for the store, or for a sink. */
  pending(): number;
  /** Resolves once every step pushed so far was written, emitted, passed every gate, was settled and its outbox entry deleted. */
  idle(): Promise<void>;
  /** Takes no more writes but the deletion of confirmed outbox entries; then closes the store. */
  close(): Promise<void>;
}

export interface CommitOptions {
  store: BaselineStore | undefined;
  /** The state the store holds now (what was loaded). */
  persisted: BaselineState;
  /** The highest outbox id the store holds (0 if none). */
  lastOutboxId: number;
  owners: () => ReadonlyMap<EntityType, string>;
  /**
   * Emits a step's events (the hub's baseline takes its state), numbering them with `tag`;
   * returns the first event's number.
   */
  emit: (step: BaselineStep) => number;
  health: HealthBoard;
  log: Logger;
  /**
   * Without a store, settle (ack) an observation only once every sink accepted its events, as with
   * one: a cluster's stream must not miss a notification acked here and never published.
   */
  settleAfterSinks?: boolean;
  /** Default {@link MAX_UNWRITTEN_SNAPSHOTS}. */
  maxUnwrittenSnapshots?: number;
}

export function createCommitLine(options: CommitOptions): CommitLine {
  const { store, health, log, emit } = options;
  const seqs = mark<number>('sequence');
  const gates = new Set<GateState>();
  /** Steps taken, not yet written (with a store). */
  let taken: Taken[] = [];
  /** Steps emitted whose events some sink still holds, in order. */
  const waiting: Emitted[] = [];
  let waitingHead = 0;
  /** Outbox entries whose events every gate passed, to delete in the next write. */
  let confirmed: number[] = [];
  let persisted = options.persisted;
  let nextOutboxId = options.lastOutboxId + 1;
  let writing = false;
  let inFlight = 0;
  /** The highest sequence number tagged so far (the last event emitted). */
  let lastSeq = 0;
  let closed = false;
  /** The store is closed (or closing): nothing more is written. */
  let ended = false;
  let written: Promise<unknown> = Promise.resolve();
  let failures = 0;
  /** The last write's error while the store fails. */
  let writeError: Error | undefined;
  /** Snapshot steps taken and not yet written (the write in flight included). */
  let unwrittenSnapshots = 0;
  const maxUnwrittenSnapshots = options.maxUnwrittenSnapshots ?? MAX_UNWRITTEN_SNAPSHOTS;
  /** Snapshots left out since the backlog reached the limit (0: taking them). */
  let refused = 0;
  let idlers: (() => void)[] = [];

  const snapshotsIn = (steps: readonly Taken[]): number => {
    let n = 0;
    for (const { step } of steps) if (step.observation?.kind === 'snapshot') n++;
    return n;
  };
  /** The state's health: the write's error, and the backpressure while snapshots are left out. */
  const reportDown = (retryInMs?: number): void => {
    const unfolded = store?.unfoldedBytes?.() ?? 0;
    const lag = unfolded >= MAX_UNFOLDED_BYTES ? ` (and ${Math.round(unfolded / 1048576)} MiB of the log wait to be folded)` : '';
    const backlog = refused > 0 ? `${unwrittenSnapshots} snapshots wait to be written${lag}, newer ones are not taken until they are (${refused} left out so far)` : undefined;
    const message = [writeError ? `writing the state store in ${store?.dir}: ${errorMessage(writeError)}` : undefined, backlog].filter((m) => m !== undefined).join('; ');
    health.set(STATE_HEALTH, { status: 'down', failures, error: writeError ? new Error(message, { cause: writeError }) : message, retryInMs });
  };

  const isIdle = (): boolean =>
    waitingHead >= waiting.length &&
    !writing &&
    // Stryker disable next-line ConditionalExpression: push() and advance() start a write at once, so outside a write nothing is taken or confirmed until close() (which writes no new steps): `!writing` decides
    taken.length === 0 && confirmed.length === 0;
  const wakeIdlers = (): void => {
    if (!isIdle()) return;
    const w = idlers;
    idlers = [];
    for (const resolve of w) resolve();
  };

  const acceptedByAll = (p: Emitted): boolean => {
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

  /** Settles the steps every gate passed, in order, and queues their outbox entries for deletion. */
  const advance = (): void => {
    while (waitingHead < waiting.length && acceptedByAll(waiting[waitingHead]!)) {
      const p = waiting[waitingHead]!;
      waiting[waitingHead++] = undefined as unknown as Emitted;
      // The ack need not wait for the deletion: a crash in between re-emits the entry (at least once).
      if (store || options.settleAfterSinks) p.step.observation?.settle?.({ ok: true });
      if (p.outboxId !== undefined) confirmed.push(p.outboxId);
    }
    if (waitingHead === waiting.length) waiting.length = waitingHead = 0;
    commit();
    wakeIdlers();
  };

  /** A step just emitted: settled in order, so a later message is never acked before an earlier one. */
  const emitted = (step: BaselineStep, firstSeq: number, outboxId: number | undefined): void => {
    if (step.events.length > 0 || step.observation?.settle) waiting.push({ step, firstSeq, outboxId });
  };

  const commit = (): void => {
    if (!store || ended || writing || (taken.length === 0 && confirmed.length === 0)) return;
    // Once closing, only confirmed entries are still deleted (a clean stop leaves no outbox).
    if (closed && confirmed.length === 0) return;
    const batch = closed ? [] : taken;
    const deleted = confirmed;
    writing = true;
    inFlight = batch.length;
    if (!closed) taken = [];
    confirmed = [];
    const next = batch.length > 0 ? batch[batch.length - 1]!.step.state : persisted;
    // A change touches its own key, if its step changed the entries (the store writes every key
    // named without comparing); a snapshot the keys its step names (any entry of its types if it
    // names none: the store then compares them all).
    let keys: string[] | undefined = [];
    const outbox: OutboxEntry[] = [];
    let before = persisted;
    for (const { step, outboxId } of batch) {
      if (outboxId !== undefined) outbox.push({ id: outboxId, events: step.events });
      const o = step.observation;
      const changed = step.state.entities !== before.entities;
      before = step.state;
      if (o === undefined || keys === undefined) continue;
      if (o.kind !== 'snapshot') {
        if (changed) keys.push(o.record.key);
      } else if (step.touched === undefined) keys = undefined;
      else if (batch.length === 1) keys = step.touched.slice();
      else for (const key of step.touched) keys.push(key);
    }
    written = store.write({ prev: persisted, next, keys, owners: options.owners(), outbox: { add: outbox, remove: deleted } }).then(
      () => {
        persisted = next;
        writing = false;
        inFlight = 0;
        unwrittenSnapshots -= snapshotsIn(batch);
        if (refused > 0 && unwrittenSnapshots < maxUnwrittenSnapshots) {
          log.info('state: taking snapshots again', { leftOut: refused });
          refused = 0;
        }
        failures = 0;
        writeError = undefined;
        if (health.value()[STATE_HEALTH]?.status !== 'up' && refused === 0) health.set(STATE_HEALTH, { status: 'up' });
        for (const { step, outboxId } of batch) emitted(step, emit(step), outboxId);
        advance();
      },
      (error: unknown) => {
        // Disk full, I/O error: nothing is emitted, settled (acked) or dropped; the same steps
        // are written again, with the ones taken meanwhile.
        failures += 1;
        writeError = error instanceof Error ? error : new Error(String(error));
        const retryInMs = backoffDelay(failures, { initialMs: 1000, maxMs: 30_000 });
        reportDown(retryInMs);
        if (!closed) taken = batch.concat(taken);
        confirmed = deleted.concat(confirmed);
        inFlight = 0;
        // Closing: give up (what is left is written again, or re-emitted, at the next start).
        if (closed) {
          writing = false;
          return;
        }
        setTimeout(() => {
          writing = false;
          commit();
        }, retryInMs).unref();
      },
    );
    log.debug('state: committing', { observations: batch.length, outboxDeleted: deleted.length });
  };

  return {
    admits(o) {
      if (!store || o.kind !== 'snapshot') return true;
      const unfolded = store.unfoldedBytes?.() ?? 0;
      if (unwrittenSnapshots < maxUnwrittenSnapshots && unfolded < MAX_UNFOLDED_BYTES) return true;
      if (refused++ === 0) log.warn('state: snapshots wait to be written, newer ones are not taken until they are', { waiting: unwrittenSnapshots, unfoldedBytes: unfolded, source: o.source });
      reportDown();
      return false;
    },
    push(step) {
      if (!store && options.settleAfterSinks) {
        // A cluster without a store: settled once every sink took the events (advance).
        emitted(step, emit(step), undefined);
        advance();
        return;
      }
      if (!store) {
        // Settled at once, as without a store it always was; still followed through the gates, so a
        // drain can wait until every sink took over what was emitted.
        const firstSeq = emit(step);
        step.observation?.settle?.({ ok: true });
        if (step.events.length === 0) return;
        waiting.push({ step, firstSeq, outboxId: undefined });
        advance();
        return;
      }
      taken.push({ step, outboxId: step.events.length > 0 ? nextOutboxId++ : undefined });
      if (step.observation?.kind === 'snapshot') unwrittenSnapshots++;
      commit();
    },
    reemit(entries) {
      let events = 0;
      for (const entry of entries) {
        const step: BaselineStep = { state: persisted, events: entry.events };
        emitted(step, emit(step), entry.id);
        events += entry.events.length;
      }
      advance();
      return events;
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
    pending: () => {
      let n = taken.length + inFlight;
      for (let i = waitingHead; i < waiting.length; i++) if (waiting[i]!.step.observation) n++;
      return n;
    },
    idle: () => (isIdle() ? Promise.resolve() : new Promise<void>((resolve) => idlers.push(resolve))),
    async close() {
      closed = true;
      // The write in flight, then the deletion of the outbox entries it let through (bounded:
      // a failing store is given up, its entries are emitted again at the next start).
      for (let i = 0; i < 3 && (writing || confirmed.length > 0); i++) {
        commit();
        await written;
      }
      ended = true;
      await store?.close();
    },
  };
}
