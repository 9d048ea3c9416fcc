/**
 * What every OpenStack poll source shares: its options (cloud, interval, timeout), a Keystone
 * session, one HTTP client per service endpoint, and the poll loop. A source only says which
 * service it talks to, what it fetches and how a record maps to an entity.
 */
import { DEFAULT_MAX_RESPONSE_BYTES, type HttpClient, createHttpClient } from '../../src/http.js';
import type { EntityType } from '../../src/model.js';
import type { OptionReader } from '../../src/options.js';
import type { BaselineLookup, Kept, KeptPaging } from '../../src/kept.js';
import { errorMessage } from '../../src/log.js';
import { type ReadCount, type SnapshotAttempt, pollSnapshots, readPollTiming } from '../../src/poll.js';
import type { EntityMapping, Source, SourceContext } from '../../src/source.js';
import { type CloudConfig, type KeystoneSession, type KeystoneToken, readCloudOptions, sharedSession } from './keystone.js';

export interface OpenStackPollOptions {
  cloud: CloudConfig;
  /** Time between polls, ms (`interval`, default 30s). */
  intervalMs: number;
  /** A whole poll (every page) that takes longer is abandoned, ms (`timeout`, default 2m). */
  timeoutMs: number;
  /** One HTTP request, ms (`requestTimeout`, default 30s). */
  requestTimeoutMs: number;
  /** Deletion hysteresis (`missesBeforeDelete`, default 1). */
  missesBeforeDelete: number;
  /** A poll still running logs its progress this often, ms (`progressInterval`, default 5s). */
  progressEveryMs: number;
  /** Cap of one response body after decompression (`maxResponseSize`, default 64MiB). */
  maxResponseBytes: number;
}

/** Reads the options every OpenStack poll source has. */
export function readOpenStackPollOptions(read: OptionReader): OpenStackPollOptions {
  const timing = readPollTiming(read, 120_000);
  return {
    cloud: readCloudOptions(read),
    ...timing,
    requestTimeoutMs: read.duration('requestTimeout', Math.min(30_000, timing.timeoutMs)),
    maxResponseBytes: read.bytes('maxResponseSize', DEFAULT_MAX_RESPONSE_BYTES),
  };
}

/** What a source's fetch is given for one poll. */
export interface ServiceCall<R = unknown> {
  /** Client of the service's endpoint (catalog URL, adjusted by `endpoint`), authenticated. */
  http: HttpClient;
  token: KeystoneToken;
  /** Aborted when the poll times out or the source stops. */
  signal: AbortSignal;
  /** The client of another service of the same cloud (its catalog URL; Octavia reads Neutron's ports). */
  service: (serviceTypes: readonly string[], endpoint?: (url: string) => string) => Promise<HttpClient>;
  /**
   * Hands records of this poll's snapshot over now, a page as read (fetchAllPages' `onPage`), so
   * they are normalized and compared while young; they are not returned again (pollSnapshots).
   */
  deliver: (records: readonly (R | Kept)[]) => void;
  /**
   * Set when the hub lent the source the baseline: give it (fetchAllPages' `kept`) to the fetch of
   * a collection whose entity depends on the record alone, and its unchanged records come kept.
   */
  kept: KeptPaging | undefined;
}

export interface OpenStackSourceSpec<R> {
  /** Catalog service types to look for, in order: `['volumev3', 'block-storage', 'volume']`. */
  serviceTypes: readonly string[];
  types: readonly EntityType[];
  /** Fixes the catalog URL up (add `/v2.0`, the project id…). */
  endpoint?: (url: string, token: KeystoneToken) => string;
  /** Headers of every request (microversions). */
  headers?: Record<string, string>;
  /** Every record of one complete snapshot; rejects if any part failed. */
  fetch: (call: ServiceCall<R>) => Promise<R[]>;
  map: EntityMapping<R>;
}

/** The catalog URL with `suffix` appended unless it already ends with it. */
export function withSuffix(url: string, suffix: string): string {
  const trimmed = url.replace(/\/+$/, '');
  return trimmed.endsWith(suffix) ? trimmed : `${trimmed}${suffix}`;
}

/**
 * An OpenStack poll source: every `intervalMs`, a token (shared, renewed as needed), the service
 * endpoint from the catalog, then `spec.fetch`; a snapshot when it all succeeded, else a health
 * signal and a retry with backoff.
 */
export function openstackSource<R>(spec: OpenStackSourceSpec<R>, options: OpenStackPollOptions, context: SourceContext): Source<R> {
  const { name, scheduler, log } = context;
  const session: KeystoneSession = sharedSession(options.cloud, { scheduler, log: log.child({ component: 'keystone' }), timeoutMs: options.requestTimeoutMs, maxResponseBytes: options.maxResponseBytes });
  const clients = new Map<string, HttpClient>();
  const clientFor = (baseUrl: string): HttpClient => {
    let client = clients.get(baseUrl);
    if (!client) {
      client = createHttpClient({
        baseUrl,
        auth: session.auth,
        timeoutMs: options.requestTimeoutMs,
        scheduler,
        log,
        name,
        maxResponseBytes: options.maxResponseBytes,
        ...(options.cloud.tls ? { tls: options.cloud.tls } : {}),
        ...(spec.headers ? { headers: spec.headers } : {}),
      });
      clients.set(baseUrl, client);
    }
    return client;
  };
  /** What every client of the source received: a poll's progress and its snapshot's `read`. */
  const received = (): ReadCount => {
    const sum = { responses: 0, bytes: 0, records: 0 };
    for (const c of clients.values()) {
      sum.responses += c.received.responses;
      sum.bytes += c.received.bytes;
      sum.records += c.received.records;
    }
    return sum;
  };
  /** Lent by the hub before it subscribes (Source.useBaseline). */
  let lookup: BaselineLookup | undefined;
  const fetch = async ({ signal, deliver, kept }: SnapshotAttempt<R>): Promise<R[]> => {
    const token = await session.token();
    const url = await session.endpoint(spec.serviceTypes).catch((e: unknown) => {
      throw new Error(`${name}: ${errorMessage(e)} (credentials from ${options.cloud.origin})`, { cause: e });
    });
    const service = async (types: readonly string[], fix = (u: string): string => u): Promise<HttpClient> => clientFor(fix(await session.endpoint(types)));
    return spec.fetch({ http: clientFor(spec.endpoint ? spec.endpoint(url, token) : url), token, signal, service, deliver, kept });
  };
  return {
    name,
    types: spec.types,
    signal$: pollSnapshots(fetch, {
      intervalMs: options.intervalMs,
      timeoutMs: options.timeoutMs,
      scheduler,
      types: spec.types,
      source: name,
      missesBeforeDelete: options.missesBeforeDelete,
      progressEveryMs: options.progressEveryMs,
      received,
      log,
      baseline: () => lookup,
    }),
    map: spec.map,
    useBaseline: (lent) => {
      lookup = lent;
    },
  };
}

/**
 * Runs the parts of one snapshot side by side; the first failure aborts the others (no requests
 * left running for a snapshot that is lost anyway).
 */
export async function allParts<T extends readonly unknown[]>(signal: AbortSignal, parts: { [K in keyof T]: (signal: AbortSignal) => Promise<T[K]> }): Promise<T> {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    return (await Promise.all(
      parts.map((part) =>
        part(controller.signal).catch((e: unknown) => {
          controller.abort();
          throw e;
        }),
      ),
    )) as unknown as T;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
