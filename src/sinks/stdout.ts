import type { Writable } from 'node:stream';
import type { EntityEvent } from '../model.js';
import type { Sink, SinkPlugin } from './index.js';

/** One EntityEvent as its NDJSON line (the service's output contract; `raw` is never written). */
export function eventLine(event: EntityEvent): string {
  const { raw: _raw, ...entity } = event.entity;
  return JSON.stringify({ ...event, entity }) + '\n';
}

/** Writes every event as one JSON line. */
export function writeEvents(out: Writable): Sink {
  return {
    attach(sync) {
      // A line is taken over once written: only then may its observation be persisted and acked.
      const gate = sync.gate();
      const subscription = sync.entity$.subscribe((event) => out.write(eventLine(event), (error) => error || gate.accept(event)));
      subscription.add(() => gate.close());
      return subscription;
    },
    close: () => new Promise<void>((resolve) => (out.writableNeedDrain ? out.once('drain', () => resolve()) : resolve())),
  };
}

/** `use: stdout` — the default sink. */
const stdoutSink: SinkPlugin<Record<string, never>> = {
  options: () => ({}),
  create: () => writeEvents(process.stdout),
};
export default stdoutSink;
