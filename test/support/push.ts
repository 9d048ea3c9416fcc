import { type EntityEvent, type Synchronizer, createSource, createSynchronizer } from '../../src/index.js';
import { freePort } from './ports.js';
import { waitFor } from './wait.js';

export interface PushTarget {
  /** `http://127.0.0.1:<port><path>` */
  url: string;
  sync: Synchronizer;
  events: EntityEvent[];
  /** POSTs a body (a string is sent as is, anything else as JSON); resolves with status and parsed answer. */
  post(body: unknown, init?: { headers?: Record<string, string>; method?: string; path?: string }): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }>;
  stop(): void;
}

/**
 * Starts a push source (`use`, extra options) on a free loopback port inside a synchronizer, and
 * waits until it listens.
 */
export async function startPushSource(use: string, path: string, extra: Record<string, unknown> = {}, more: { otherSources?: Parameters<typeof createSynchronizer>[0]['sources'] } = {}): Promise<PushTarget> {
  const port = await freePort();
  const source = await createSource({ name: 'push', use, listen: `127.0.0.1:${port}`, ...extra });
  const sync = createSynchronizer({ sources: [source, ...(more.otherSources ?? [])] });
  const events: EntityEvent[] = [];
  sync.entity$.subscribe((e) => events.push(e));
  sync.start();
  await waitFor('the push source to listen', () => sync.health().push?.status === 'up');
  const base = `http://127.0.0.1:${port}`;
  return {
    url: `${base}${path}`,
    sync,
    events,
    async post(body, init = {}) {
      const res = await fetch(`${base}${init.path ?? path}`, {
        method: init.method ?? 'POST',
        headers: { 'content-type': 'application/json', ...init.headers },
        body: typeof body === 'string' ? body : JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      return { status: res.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {}, headers: res.headers };
    },
    stop: () => sync.stop(),
  };
}
