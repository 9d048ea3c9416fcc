/**
 * How long work that is not the push path's may hold the event loop before it yields, and the
 * yield itself: shared by the hub's slices of a big snapshot (hub/slicing.ts) and the transport's
 * read of a streamed body (http.ts), so that no piece of a poll blocks notifications for longer.
 */

/**
 * A slice's time at most, whatever its records cost: a count alone let one slice run 53 ms on a
 * loaded machine (docs/scale.md). Half the push path's 10 ms p99.
 */
export const SLICE_MS = 5;

/** Yields to the event loop: pending I/O callbacks (a delivered message, a request) run first. */
export function pauseForIo(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
