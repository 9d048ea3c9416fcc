/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export interface WaitOptions {
  /** Give up after this long (default 15 s). */
  timeoutMs?: number;
  /** Poll this often (default 20 ms). */
  everyMs?: number;
  /** What the test saw, appended to the timeout's message. */
  context?: () => string;
}

/**
 * Polls `probe` (sync or async) until it gives something other than undefined, null or false, and resolves with
 * it; rejects naming `what` once `timeoutMs` has passed. A number for `options` is the timeout.
 */
export async function waitFor<T>(what: string, probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: WaitOptions | number = {}): Promise<T> {
  const { timeoutMs = 15_000, everyMs = 20, context } = typeof options === 'number' ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${context ? `; ${context()}` : ''}`);
    await sleep(everyMs);
  }
}
