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

/** Slices waiting for their turn, first come first served. */
const waiting: (() => void)[] = [];
let pumping = false;

/** Lets one waiting slice go on in this turn of the event loop, and the next one in the next turn. */
function release(): void {
  waiting.shift()?.();
  if (waiting.length > 0) setImmediate(release);
  else pumping = false;
}

/**
 * Yields to the event loop: pending I/O callbacks (a delivered message, a request) run first.
 * One slice goes on per turn, whoever's: a page being read, a snapshot being normalized and
 * another being prepared each yield after their own 5 ms, and with an immediate each, the three
 * went on back to back in the same turn (15 ms and more before the next I/O, docs/scale.md).
 */
export function pauseForIo(): Promise<void> {
  return new Promise((resolve) => {
    waiting.push(resolve);
    if (pumping) return;
    pumping = true;
    setImmediate(release);
  });
}
