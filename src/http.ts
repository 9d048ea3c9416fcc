/**
 * The one HTTP transport of the synchronizer's REST sources (OpenStack, Nagios, Alertmanager), on
 * axios: per-request timeout, retry with the shared backoff policy (src/backoff.ts) on connection
 * errors, timeouts and 5xx, Retry-After on 429, an auth hook that is renewed once on a 401, abort
 * through an AbortSignal, and OpenStack-style pagination. Error messages name the method, URL and
 * status, never a credential. TLS trust and client certificates (src/tls.ts) are applied here, a
 * response body is capped (after decompression), and credentials never follow a redirect to
 * another origin. A big JSON answer can be streamed (`select`): its elements are read one by one
 * as they arrive (src/jsonStream.ts), so only one element's text is held at a time.
 */
import { Agent as HttpsAgent } from 'node:https';
import type { Readable } from 'node:stream';
import axios, { type AxiosInstance, type AxiosResponse, isAxiosError } from 'axios';
import {
  type MonoTypeOperatorFunction,
  type ObservableInput,
  type SchedulerLike,
  Observable,
  asyncScheduler,
  catchError,
  defer,
  from,
  retry,
  switchMap,
  take,
  throwError,
  timeout,
  timer,
} from 'rxjs';
import { type BackoffOptions, backoffDelay } from './backoff.js';
import { JsonSelectStream, JsonStreamError, type SelectKey } from './jsonStream.js';
import { type Logger, errorMessage, silentLogger } from './log.js';
import { type OffThreadOptions, ParseWorkerError, parseOffThread } from './parseOffThread.js';
import { type PickShape, applyShape } from './pick.js';
import { turnBudget } from './pause.js';
import type { OptionReader } from './options.js';
import { Kept, type KeptPaging } from './kept.js';
import type { EntityType } from './model.js';
import { type PollAttempt, type PollTiming, type ReadCount, pollSnapshots, readPollTiming } from './poll.js';
import type { SourceSignal } from './source.js';
import { INSECURE_WARNING, type TlsOptions, nodeTlsOptions, readTlsOptions } from './tls.js';

export type HttpMethod = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Query parameters; `undefined` values are left out. */
export type QueryParams = Record<string, string | number | boolean | undefined>;

/**
 * Credentials that change over time (a Keystone token): asked for before every attempt, and told
 * when the server refused them so the next `headers()` fetches fresh ones.
 */
export interface HttpAuth {
  /** Headers that authenticate a request, e.g. `{ 'X-Auth-Token': … }`. */
  headers(): ObservableInput<Record<string, string>>;
  /** The server answered 401 to `headers`: drop them. The request is then retried once. */
  unauthorized?(headers: Record<string, string>): void;
}

export interface HttpClientOptions {
  /** Prefix of relative request URLs, e.g. `http://127.0.0.1:8774/v2.1`. */
  baseUrl?: string;
  /** Sent with every request. */
  headers?: Record<string, string>;
  /** HTTP basic auth (Nagios CGIs). */
  basicAuth?: { username: string; password: string };
  /** Renewable credentials (Keystone tokens). */
  auth?: HttpAuth;
  /** A request (one attempt) not answered after this long is abandoned and retried, ms (default 30000). */
  timeoutMs?: number;
  /** Retries after the first attempt on connection errors, timeouts, 5xx and 429 (default 3). */
  retries?: number;
  backoff?: BackoffOptions;
  /** Time source of timeouts and retry delays. */
  scheduler?: SchedulerLike;
  log?: Logger;
  /** Who is asking (a source name): prefixed to error messages. */
  name?: string;
  /** TLS trust and client certificate of https URLs (default: Node's trust store, verified). */
  tls?: TlsOptions;
  /**
   * A response body larger than this (after decompression) fails the request, bytes (default
   * 64 MiB). A streamed response (`select`) may be longer: then one element, and the document
   * around the elements, may each be this large.
   */
  maxResponseBytes?: number;
  /** Elements a streamed response (`select`) may hand over (default 10,000,000). */
  maxResponseItems?: number;
  /**
   * Reads streamed responses (`select`) that have a `pick` shape on the process's JSON parse worker
   * thread (default true): this thread then only reads the socket and receives the picked
   * elements. `false` reads them here, as before session 10. A select without a shape is always
   * read here (cloning whole elements back costs more than parsing them).
   */
  parseOffThread?: boolean;
}

/** Default cap of one response body, after decompression. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;
/** Default cap of the elements of one streamed response. */
export const DEFAULT_MAX_RESPONSE_ITEMS = 10_000_000;
/** What is read of a failed streamed response's body, for its error message. */
const ERROR_BODY_BYTES = 64 * 1024;
/** Nesting allowed within one value of a streamed response (real answers nest a few levels). */
const MAX_STREAM_DEPTH = 512;

/** Redirects followed per request (same origin, or another one for a request without credentials). */
const MAX_REDIRECTS = 5;
const REDIRECT_STATUS = new Set([301, 302, 303, 307, 308]);
/** Headers that carry credentials: a request with one never follows a redirect to another origin. */
const CREDENTIAL_HEADER = /^(authorization|proxy-authorization|cookie|x-auth-token|x-subject-token|x-api-key)$/i;

/** TLS verification failures: the message says what to configure. */
const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|EPROTO/;

export interface HttpRequest {
  method?: HttpMethod;
  /** Absolute, or relative to the client's baseUrl. */
  url: string;
  params?: QueryParams;
  headers?: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
  /** `json` (default) parses the body; `text` returns it as a string. */
  responseType?: 'json' | 'text';
  /** Aborts the request and any pending retry (pollSnapshots gives one per attempt). */
  signal?: AbortSignal;
  timeoutMs?: number;
  /**
   * Streams a JSON body instead of parsing it whole: the response's `data` is then
   * {@link Selected} (see {@link HttpClient.getEach}).
   */
  select?: SelectOptions<unknown>;
}

/** Which elements of a streamed JSON body are read, and how each becomes a record. */
export interface SelectOptions<R> {
  /**
   * Where the elements are: `[*]` (the items of a top-level list), `data.activeTargets[*]`,
   * `data.hostlist.*` (the members of a mapping), `data.servicelist.*.*`.
   */
  select: string;
  /**
   * What to keep of each element, applied before `each` (on the parse worker when the body is read
   * there, so that only the picked element is copied back): see {@link PickShape}.
   */
  pick?: PickShape;
  /**
   * Called with each element as soon as it has arrived (JSON.parse's value, picked) and the keys or
   * indexes of the path's wildcards; returns the record to keep (undefined: none). What it throws
   * fails the request as it is, not retried: name the URL and the element in it.
   */
  each: (element: unknown, keys: readonly SelectKey[]) => R | undefined;
  /**
   * Keeps the elements a poll before had as they are (src/kept.ts): read on the parse worker, they
   * come as ids, and `each` is given what `onKept(id, base)` returns in their place (undefined:
   * the element is read in full). `base()` is read when the body's stream opens. Without the parse
   * worker (no `pick`, or `parseOffThread: false`) every element is read in full.
   */
  kept?: KeptSelect;
}

/** How a streamed body keeps unchanged elements ({@link SelectOptions.kept}). */
export interface KeptSelect {
  family: string;
  generation: number;
  /** The element's field that names it. */
  id: string;
  base: () => number | undefined;
  onKept: (id: string, base: number) => unknown;
}

/** A streamed answer: the records `each` made, in order, and the document without its elements. */
export interface Selected<R> {
  records: R[];
  /** The body with the selected containers left empty (`{"status":"success","data":{"activeTargets":[]}}`): check the envelope here. */
  rest: unknown;
}

export interface HttpResponse<T> {
  status: number;
  /** Lower-case header names. */
  headers: Record<string, string>;
  data: T;
  /** The URL that answered, credentials removed. */
  url: string;
}

/**
 * A request that failed. `status` is absent for connection errors, timeouts and aborts;
 * `retryable` says whether trying again may help.
 */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly method: HttpMethod,
    readonly url: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
    /** For 429 (and 503) with Retry-After: how long the server asked us to wait, ms. */
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HttpError';
  }
}

const SECRET_PARAM = /token|password|secret|key|auth|credential|signature/i;

/** The URL as it may appear in messages and logs: no userinfo, secret-looking query values masked. */
export function safeUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//');
  }
  u.username = '';
  u.password = '';
  for (const name of [...u.searchParams.keys()]) {
    if (SECRET_PARAM.test(name)) u.searchParams.set(name, '***');
  }
  return u.toString();
}

/** Retry-After in ms: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, nowMs: number): number | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

/** Connection-level failures worth another attempt (the server may be restarting or a proxy flapping). */
const RETRYABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ECONNABORTED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ERR_SOCKET_CONNECTION_TIMEOUT']);

export interface RetryHttpOptions {
  /** Retries after the first attempt (default 3). */
  retries?: number;
  backoff?: BackoffOptions;
  scheduler?: SchedulerLike;
  onRetry?: (info: { error: HttpError; attempt: number; delayMs: number }) => void;
}

/**
 * Retries a request Observable after retryable {@link HttpError}s: after the server's Retry-After
 * when it gave one (429), else after `backoffDelay(attempt)`. Anything else fails at once.
 *
 * ```
 * source:  -#  (503)    -#  (429, Retry-After: 5)   -a|
 * result:  -- 1s ------ -- 5s ---------------------- -a|
 * ```
 *
 * 1. Non-HttpErrors and HttpErrors with `retryable: false` (4xx, abort) are passed on unchanged.
 * 2. After `retries` retries the last error is passed on.
 * 3. Unsubscribing cancels a pending delay.
 */
export function retryHttp<T>(options: RetryHttpOptions = {}): MonoTypeOperatorFunction<T> {
  const { retries = 3, backoff = {}, scheduler = asyncScheduler, onRetry } = options;
  return retry<T>({
    count: retries,
    delay: (error: unknown, attempt: number) => {
      if (!(error instanceof HttpError) || !error.retryable) return throwError(() => error);
      const delayMs = error.retryAfterMs ?? backoffDelay(attempt, backoff);
      onRetry?.({ error, attempt, delayMs });
      return timer(delayMs, scheduler);
    },
  });
}

/** Rejects when `signal` aborts, unsubscribing from the request (which aborts it). */
function toPromise<T>(source: Observable<T>, signal: AbortSignal | undefined, abortError: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortError());
      return;
    }
    let done = false;
    const onAbort = (): void => {
      if (done) return;
      done = true;
      subscription.unsubscribe();
      reject(abortError());
    };
    const finish = (): void => {
      done = true;
      signal?.removeEventListener('abort', onAbort);
    };
    const subscription = source.pipe(take(1)).subscribe({
      next: (value) => {
        finish();
        resolve(value);
      },
      error: (e: unknown) => {
        finish();
        reject(e);
      },
      complete: () => {
        if (!done) {
          finish();
          reject(abortError());
        }
      },
    });
    if (!done) signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function lowerCaseHeaders(headers: AxiosResponse['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (v !== undefined && v !== null) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : String(v);
  }
  return out;
}

/** The first line or so of a response body, for an error message. */
function excerpt(body: string): string {
  const text = body.replace(/\s+/g, ' ').trim();
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/**
 * An HTTP client for one API. Every method sends one logical request: it retries on its own and
 * resolves with the final answer, or rejects with an {@link HttpError}.
 *
 * Example:
 * ```ts
 * const http = createHttpClient({ baseUrl: 'http://127.0.0.1:9090', timeoutMs: 5000 });
 * const alerts = await http.get<unknown[]>('/api/v2/alerts', { signal });
 * ```
 */
export class HttpClient {
  private readonly axios: AxiosInstance;
  private readonly scheduler: SchedulerLike;
  private readonly log: Logger;
  private readonly prefix: string;
  /**
   * Successful responses, their body bytes and the records fetchAllPages took from them, since
   * the client was made: pollSnapshots' `received` reads them for progress logs.
   */
  readonly received: ReadCount = { responses: 0, bytes: 0, records: 0 };

  constructor(readonly options: HttpClientOptions = {}) {
    this.scheduler = options.scheduler ?? asyncScheduler;
    this.log = options.log ?? silentLogger;
    this.prefix = options.name ? `${options.name}: ` : '';
    this.axios = axios.create({
      ...(options.baseUrl !== undefined ? { baseURL: options.baseUrl } : {}),
      ...(options.basicAuth ? { auth: options.basicAuth } : {}),
      headers: { Accept: 'application/json', ...options.headers },
      // Status handling, body parsing and timeouts are ours: one place decides what is retried.
      validateStatus: () => true,
      responseType: 'text',
      transformResponse: [(data: unknown) => data],
      // Redirects are ours too: follow-redirects would re-send X-Auth-Token and a 307's password
      // body to whatever host a Location names.
      maxRedirects: 0,
      // Counted by axios on the decompressed stream: a gzip bomb stops at the cap too.
      maxContentLength: options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
      ...(options.tls ? { httpsAgent: new HttpsAgent({ ...nodeTlsOptions(options.tls), keepAlive: true }) } : {}),
    });
    if (options.tls?.insecure) this.log.warn(`${this.prefix}${INSECURE_WARNING}`, { url: options.baseUrl !== undefined ? safeUrl(options.baseUrl) : null });
  }

  /** The full URL a request goes to (baseUrl, params), credentials removed. */
  urlOf(request: Pick<HttpRequest, 'url' | 'params'>): string {
    return safeUrl(this.axios.getUri({ url: request.url, params: cleanParams(request.params) }));
  }

  /**
   * The request as a cold Observable: subscribing sends it (with retries), unsubscribing aborts
   * it. Emits one response and completes, or errors with an HttpError.
   */
  request$<T = unknown>(request: HttpRequest): Observable<HttpResponse<T>> {
    const { auth } = this.options;
    const attempt$ = (): Observable<HttpResponse<T>> =>
      auth
        ? from(auth.headers()).pipe(
            take(1),
            switchMap((authHeaders) =>
              this.send$<T>(request, authHeaders).pipe(
                catchError((e: unknown) => {
                  if (!(e instanceof HttpError) || e.status !== 401 || !auth.unauthorized) return throwError(() => e);
                  // Expired or revoked token: renew once, then a second 401 is a real refusal.
                  auth.unauthorized(authHeaders);
                  return from(auth.headers()).pipe(
                    take(1),
                    switchMap((renewed) => this.send$<T>(request, renewed)),
                    catchError((again: unknown) =>
                      again instanceof HttpError && again.status === 401
                        ? throwError(() => new HttpError(`${again.message} (also after renewing the credentials)`, again.method, again.url, 401, false, undefined, { cause: again }))
                        : throwError(() => again),
                    ),
                  );
                }),
              ),
            ),
          )
        : this.send$<T>(request, {});
    return defer(attempt$).pipe(
      retryHttp<HttpResponse<T>>({
        retries: this.options.retries ?? 3,
        backoff: this.options.backoff ?? {},
        scheduler: this.scheduler,
        onRetry: ({ error, attempt, delayMs }) => this.log.debug('retrying HTTP request', { error, attempt, delayMs }),
      }),
    );
  }

  /** Sends a request; resolves with the response (2xx), rejects with an HttpError. */
  request<T = unknown>(request: HttpRequest): Promise<HttpResponse<T>> {
    const method = request.method ?? 'GET';
    return toPromise(this.request$<T>(request), request.signal, () => new HttpError(`${this.prefix}${method} ${this.urlOf(request)} aborted`, method, this.urlOf(request), undefined, false));
  }

  /** GET, parsed JSON body. */
  async get<T = unknown>(url: string, options: Omit<HttpRequest, 'url' | 'method' | 'responseType'> = {}): Promise<T> {
    return (await this.request<T>({ ...options, url })).data;
  }

  /**
   * GET a JSON body as a stream: each element at `select` is handed to `each` as it arrives, so
   * the text held is one element (plus a chunk) whatever the size of the answer. Timeouts,
   * retries (a retry starts the records afresh), TLS, decompression and redirects are those of
   * every request; `maxResponseSize` bounds one element instead of the body.
   *
   * Example:
   * ```ts
   * const { records, rest } = await http.getEach('/api/v2/alerts', { select: '[*]', each: (a, [i]) => checkAlert(a, i), signal });
   * if (!Array.isArray(rest)) throw new Error('expected a list of alerts');
   * ```
   */
  async getEach<R>(url: string, options: Omit<HttpRequest, 'url' | 'method' | 'responseType' | 'select'> & SelectOptions<R>): Promise<Selected<R>> {
    const { select, each, pick, kept, ...rest } = options;
    return (await this.request<Selected<R>>({ ...rest, url, select: { select, each, ...(pick !== undefined ? { pick } : {}), ...(kept !== undefined ? { kept } : {}) } })).data;
  }

  /** GET, body as text (HTML pages, plain-text APIs). */
  async getText(url: string, options: Omit<HttpRequest, 'url' | 'method' | 'responseType'> = {}): Promise<string> {
    return (await this.request<string>({ ...options, url, responseType: 'text' })).data;
  }

  /** POST a JSON body; the whole response (some APIs answer in headers, e.g. Keystone's X-Subject-Token). */
  post<T = unknown>(url: string, body: unknown, options: Omit<HttpRequest, 'url' | 'method' | 'body'> = {}): Promise<HttpResponse<T>> {
    return this.request<T>({ ...options, url, method: 'POST', body });
  }

  /**
   * One request and its redirects. A redirect within the origin is followed as it is; one to
   * another origin (host, port or scheme) only when the request carries no credential (auth
   * headers, basic auth, a body): a token or password never reaches a host it was not meant for.
   * 303, and 301/302 after a POST, continue as a GET without the body, as browsers do.
   */
  private async exchange(request: HttpRequest, authHeaders: Record<string, string>, signal: AbortSignal, fail: (what: string, status: number | undefined, retryable: boolean) => HttpError): Promise<AxiosResponse<string | Readable>> {
    let method: HttpMethod = request.method ?? 'GET';
    let url = request.url;
    let params = cleanParams(request.params);
    let body = request.body !== undefined ? JSON.stringify(request.body) : undefined;
    const credentials = Object.keys(authHeaders).length > 0 || this.options.basicAuth !== undefined || hasCredentialHeader(this.options.headers) || hasCredentialHeader(request.headers);
    for (let hop = 0; ; hop += 1) {
      const response = await this.axios.request<string | Readable>({
        method,
        url,
        ...(params ? { params } : {}),
        headers: { ...request.headers, ...authHeaders, ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
        ...(body !== undefined ? { data: body } : {}),
        // The JSON reader bounds a streamed body itself (per element), and counts as it reads.
        ...(request.select !== undefined ? { responseType: 'stream', maxContentLength: -1 } : {}),
        signal,
      });
      const location = response.headers.location as unknown;
      if (!REDIRECT_STATUS.has(response.status) || typeof location !== 'string' || location === '') return response;
      if (typeof response.data !== 'string') response.data.destroy();
      const from = new URL(this.axios.getUri({ url, ...(params ? { params } : {}) }));
      let next: URL;
      try {
        next = new URL(location, from);
      } catch {
        throw fail(`answered ${response.status} with an unreadable Location`, response.status, false);
      }
      if (hop >= MAX_REDIRECTS) throw fail(`redirected more than ${MAX_REDIRECTS} times (last to ${safeUrl(next.toString())})`, response.status, false);
      if (next.origin !== from.origin && (credentials || body !== undefined)) {
        throw fail(
          `answered ${response.status} redirecting to another origin, ${safeUrl(next.toString())}: not followed, the request carries credentials (point the URL at the final address)`,
          response.status,
          false,
        );
      }
      if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
        method = 'GET';
        body = undefined;
      }
      url = next.toString();
      params = undefined;
    }
  }

  /**
   * Reads a streamed JSON body through the element reader: records as `each` makes them, the
   * rest at the end. A body that is not JSON or breaks a bound fails (not retried: the server
   * would send the same), naming the byte; a connection lost mid-body, or a parse worker that
   * died, is retried. The stream needs no destroy here: when the attempt ends, its teardown
   * aborts the request.
   */
  private async readSelected(
    stream: Readable,
    select: SelectOptions<unknown>,
    status: number,
    signal: AbortSignal,
    fail: (what: string, status: number | undefined, retryable: boolean, retryAfterMs?: number, cause?: unknown) => HttpError,
  ): Promise<Selected<unknown>> {
    const records: unknown[] = [];
    const onElement = (element: unknown, keys: readonly SelectKey[]): void => {
      const record = select.each(element, keys);
      if (record !== undefined) records.push(record);
      this.received.records += 1;
    };
    const bounds = { select: select.select, maxBytes: this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES, maxElements: this.options.maxResponseItems ?? DEFAULT_MAX_RESPONSE_ITEMS, maxDepth: MAX_STREAM_DEPTH };
    // Off this thread only with a shape: an element sent back whole costs the worker more to clone
    // than its JSON.parse (37 % of its time on 530 B alerts) and this thread about as much to receive
    // as to parse, so a body without a shape was read at 0.6 times the rate for no gain here
    // (docs/scale.md, "Parsing off the main thread").
    const offThread = this.options.parseOffThread !== false && select.pick !== undefined;
    const reader = !offThread
      ? inThreadReader(bounds, select.pick, onElement)
      : parseOffThread({ ...bounds, ...(select.pick !== undefined ? { pick: select.pick } : {}), ...keptRead(select.kept), onElement, onFailure: () => stream.destroy(), log: this.log });
    const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    // The start of the body, for the message when it is not JSON (an HTML error page, a proxy's login).
    let start = '';
    let bytes = 0;
    // libuv reads a socket up to 32 times per callback, and each chunk is handed over between two
    // reads: a 1.7 MB Nova page that is all in the kernel's buffer was read in one turn of the
    // event loop (15-80 ms, docs/scale.md). Once the turn's budget of sliced work is spent (this
    // read's and the hub's slices', src/pause.ts), yield: the stream buffers a chunk or so and
    // stops reading the socket meanwhile, and other sockets are served.
    const onAbort = (): void => reader.drop();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for (;;) {
        let next: IteratorResult<Buffer>;
        try {
          // Waiting for bytes may take turns: what is left of this one goes to another slice.
          turnBudget.release();
          next = await chunks.next();
        } catch (e) {
          // The parse failed, and stopped the socket's stream to say so.
          if (reader.failure() !== undefined) throw reader.failure();
          const code = (e as { code?: unknown }).code;
          const cause = new Error(typeof code === 'string' ? `${code}: ${errorMessage(e)}` : errorMessage(e));
          if (code === 'ERR_CANCELED') throw fail('aborted', undefined, false, undefined, cause);
          // A broken gzip stream stays broken; a dropped connection may not.
          throw fail(`failed while reading the body at byte ${bytes}: ${cause.message}`, undefined, !(typeof code === 'string' && code.startsWith('Z_')), undefined, cause);
        }
        if (next.done) break;
        // A chunk that came when the turn's budget was spent waits at the head of the line. It
        // cannot keep the others from theirs: before each read the rest of the turn went to them.
        if (turnBudget.spent()) await turnBudget.pause(true);
        if (start.length < 200) start += next.value.toString('utf8', 0, 200 - start.length);
        this.received.bytes += next.value.length;
        bytes += next.value.length;
        await reader.write(next.value);
      }
      return { records, rest: await reader.end() };
    } catch (e) {
      if (signal.aborted && !(e instanceof HttpError)) throw fail('aborted', undefined, false);
      if (e instanceof ParseWorkerError) throw fail(`failed while reading the body at byte ${bytes}: ${e.message}`, undefined, true, undefined, e);
      if (!(e instanceof JsonStreamError)) throw e;
      if (e.kind === 'syntax') throw fail(`answered ${status} with a body that is not valid JSON: ${e.message}${start.trim() === '' ? '' : `; it begins: ${excerpt(start)}`}`, status, false);
      const key = e.kind === 'elements' ? 'maxResponseItems' : e.kind === 'bytes' ? 'maxResponseSize' : undefined;
      throw fail(`answered ${status} with ${e.message}${key ? ` (counted after decompression; raise ${key} if it is expected)` : ''}`, status, false);
    } finally {
      signal.removeEventListener('abort', onAbort);
      reader.drop();
    }
  }

  /** One attempt, no retry. */
  private send$<T>(request: HttpRequest, authHeaders: Record<string, string>): Observable<HttpResponse<T>> {
    const method = request.method ?? 'GET';
    const url = this.urlOf(request);
    const timeoutMs = request.timeoutMs ?? this.options.timeoutMs ?? 30_000;
    const fail = (what: string, status: number | undefined, retryable: boolean, retryAfterMs?: number, cause?: unknown): HttpError =>
      new HttpError(`${this.prefix}${method} ${url} ${what}`, method, url, status, retryable, retryAfterMs, cause === undefined ? undefined : { cause });
    const send$ = new Observable<HttpResponse<T>>((subscriber) => {
      const controller = new AbortController();
      this.exchange(request, authHeaders, controller.signal, fail)
        .then(
          async (response) => {
            const headers = lowerCaseHeaders(response.headers);
            const { status } = response;
            if (typeof response.data !== 'string') {
              const stream = response.data;
              if (status >= 200 && status < 300 && request.select !== undefined) {
                const data = await this.readSelected(stream, request.select, status, controller.signal, fail);
                this.received.responses += 1;
                subscriber.next({ status, headers, data: data as T, url });
                subscriber.complete();
                return;
              }
              response.data = await readSome(stream, ERROR_BODY_BYTES).catch(() => '');
            }
            const body = typeof response.data === 'string' ? response.data : '';
            if (status >= 200 && status < 300) {
              this.received.responses += 1;
              this.received.bytes += Buffer.byteLength(body);
              let data: unknown = body;
              if ((request.responseType ?? 'json') === 'json') {
                try {
                  data = body === '' ? undefined : JSON.parse(body);
                } catch (e) {
                  throw fail(`answered ${status} with a body that is not valid JSON (${errorMessage(e)}): ${excerpt(body)}`, status, false);
                }
              }
              subscriber.next({ status, headers, data: data as T, url });
              subscriber.complete();
              return;
            }
            const detail = body ? `: ${excerpt(body)}` : '';
            const statusText = response.statusText ? ` ${response.statusText}` : '';
            if (status === 429 || status === 503) {
              const after = parseRetryAfter(headers['retry-after'], this.scheduler.now());
              throw fail(`failed with ${status}${statusText}${after !== undefined ? ` (Retry-After ${Math.round(after / 1000)} s)` : ''}${detail}`, status, true, after);
            }
            throw fail(`failed with ${status}${statusText}${detail}`, status, status >= 500);
          },
          (e: unknown) => {
            if (e instanceof HttpError) throw e;
            // The cause is a plain Error: axios's own error holds the request config (headers with
            // the token, basic auth, the body with a password), which util.inspect would print.
            if (isAxiosError(e)) {
              const cause = new Error(e.code ? `${e.code}: ${e.message}` : e.message);
              if (e.code === 'ERR_CANCELED') throw fail('aborted', undefined, false, undefined, cause);
              const code = e.code ?? '';
              if (/^maxContentLength size of \d+ exceeded$/.test(e.message)) {
                const cap = this.options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
                throw fail(`answered with a body larger than ${cap} bytes (counted after decompression; raise maxResponseSize if it is expected)`, undefined, false, undefined, cause);
              }
              if (TLS_CODES.test(code)) {
                throw fail(`failed: TLS: ${code}: ${e.message} (set the CA that signed the server's certificate: tls.ca, or cacert / OS_CACERT for OpenStack)`, undefined, false, undefined, cause);
              }
              throw fail(`failed: ${code || e.message}`, undefined, RETRYABLE_CODES.has(code) || code === '', undefined, cause);
            }
            throw fail(`failed: ${errorMessage(e)}`, undefined, true, undefined, new Error(errorMessage(e)));
          },
        )
        .catch((e: unknown) => subscriber.error(e));
      return () => controller.abort();
    });
    return send$.pipe(
      timeout({ first: timeoutMs, scheduler: this.scheduler, with: () => throwError(() => fail(`timed out after ${timeoutMs} ms`, undefined, true)) }),
    );
  }
}

function hasCredentialHeader(headers: Record<string, string> | undefined): boolean {
  return headers !== undefined && Object.keys(headers).some((h) => CREDENTIAL_HEADER.test(h));
}

/** The query `params` make, whatever their order and types: the same for the same query. */
function queryKey(params: QueryParams): string {
  const pairs: string[] = [];
  for (const [k, v] of Object.entries(params)) if (v !== undefined) pairs.push(`${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return pairs.sort().join('&');
}

function cleanParams(params: QueryParams | undefined): Record<string, string | number | boolean> | undefined {
  if (!params) return undefined;
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(params)) if (v !== undefined) out[k] = v;
  return out;
}

/** A stream's `kept` for the parse worker, its base read now (as the stream opens). */
function keptRead(kept: KeptSelect | undefined): Pick<OffThreadOptions, 'kept'> {
  if (kept === undefined) return {};
  const { family, generation, id, onKept } = kept;
  const base = kept.base();
  return { kept: { family, generation, base, id, onKept: (key) => (base === undefined ? undefined : onKept(key, base)) } };
}

/** The element reader on this thread, behind the interface of {@link parseOffThread}. */
function inThreadReader(
  bounds: { select: string; maxBytes: number; maxElements: number; maxDepth: number },
  pick: PickShape | undefined,
  onElement: (element: unknown, keys: readonly SelectKey[]) => void,
): { write(chunk: Buffer): void; end(): unknown; drop(): void; failure(): unknown } {
  const reader = new JsonSelectStream({ ...bounds, onElement: pick === undefined ? onElement : (element, keys) => onElement(applyShape(element, pick), keys) });
  return { write: (chunk) => reader.write(chunk), end: () => reader.end(), drop: () => undefined, failure: () => undefined };
}

/** Up to `max` bytes of a body, as text (the rest is not read). */
async function readSome(stream: Readable, max: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= max) break;
    }
  } finally {
    stream.destroy();
  }
  return Buffer.concat(chunks).subarray(0, max).toString('utf8');
}

/** Creates an {@link HttpClient}. */
export function createHttpClient(options: HttpClientOptions = {}): HttpClient {
  return new HttpClient(options);
}

export interface PagesOptions<T = unknown> {
  /**
   * Key of the records in each page: `servers`, `networks`, `volumes`… (`<key>_links` holds the
   * next link). `null`: each page is a bare JSON array (Aodh), paged by `limit` and `marker` only.
   */
  key: string | null;
  /**
   * Where a page names the next one: `<key>_links` (Nova, Neutron, Cinder, Octavia; the default),
   * another list of links (`links`: Trove), or `next`, a URL of its own (Ironic).
   */
  next?: { links: string } | 'next';
  params?: QueryParams;
  signal?: AbortSignal;
  headers?: Record<string, string>;
  /**
   * Page size to ask for. When a page holds `limit` records and carries no `<key>_links`, the next
   * page is asked for with `marker` = the last record's id (APIs that paginate without links).
   */
  limit?: number;
  /** A record's marker (default its `id`). */
  markerOf?: (record: unknown) => string | undefined;
  /** Safety stop against a server that loops (default 100000 pages). */
  maxPages?: number;
  /**
   * Keeps only what the source reads of each record, as its page arrives: a poll then holds a few
   * hundred bytes per record until its last page, not the API's whole record (a Nova server takes
   * 1.7 KB of heap), and the garbage collector has that much less to copy. A shape
   * ({@link PickShape}) is applied where the body is parsed (the parse worker), so only the picked
   * record crosses to this thread; a function runs here on each whole record. Applied to objects
   * only; anything else is kept as it is, for the mapping to report. Keep the marker's field
   * (`markerOf`, `id` by default) when paging by `limit`: the marker is read of the picked record.
   */
  pick?: PickShape | ((record: T) => T);
  /**
   * Hands each page's records over as it is read (a poll's `deliver`, src/poll.ts), instead of
   * holding them until the last page: they are then not in the result. A page that fails after
   * some were handed over still rejects; the poll then drops what it was given.
   */
  onPage?: (records: T[]) => void;
}

/** Which records of a poll's pages are kept when unchanged (src/kept.ts): see {@link KeptPagesOptions}. */
export interface KeptPages {
  paging: KeptPaging;
  /** The entity type a record maps to: what the hub is asked for. */
  type: EntityType;
  /** The record's field that names it (its value, as a string, is the entity's id). */
  id: string;
}

/**
 * {@link PagesOptions} of a poll whose source was lent the baseline: with `kept`, a record the
 * poll before had as it is may come as the baseline's entity ({@link Kept}) instead. Only for a
 * source whose entity depends on the record alone (nothing of the page, no other request). A
 * kept record's marker (paging by `limit`) is its `kept.id` field.
 */
export interface KeptPagesOptions<T> extends Omit<PagesOptions<T>, 'onPage'> {
  kept: KeptPages | undefined;
  onPage?: (records: (T | Kept)[]) => void;
}

interface Link {
  href?: unknown;
  rel?: unknown;
}

function nextHref(page: Record<string, unknown>, key: string, style: PagesOptions['next']): string | undefined | null {
  // Ironic: `next` is there while the page was full, and absent from the last page.
  if (style === 'next') return typeof page.next === 'string' ? page.next : undefined;
  const links = page[style?.links ?? `${key}_links`];
  if (!Array.isArray(links)) return null; // no links at all: the API doesn't paginate by links
  const next = (links as Link[]).find((l) => l && l.rel === 'next');
  return typeof next?.href === 'string' ? next.href : undefined;
}

/**
 * Every record of an OpenStack collection, all pages: follows `<key>_links` `rel: next` until the
 * last page (Nova caps a page at its max_limit whatever the client asks, so reading one page is
 * never enough). Other services' styles, by `next` and `key`: Ironic's `next` URL, Trove's `links`,
 * and pages without links (Heat, and Aodh's bare arrays) asked for by `limit` and `marker`.
 * Rejects if any page fails, so a caller never mistakes part of a collection for the whole of it.
 *
 * Only the next link's query is used, on the URL that was asked for: services build links from
 * their own configured prefix, which behind a proxy may name an address the client can't reach.
 */
export function fetchAllPages<T>(http: HttpClient, url: string, options: PagesOptions<T>): Promise<T[]>;
export function fetchAllPages<T>(http: HttpClient, url: string, options: KeptPagesOptions<T>): Promise<(T | Kept)[]>;
export async function fetchAllPages<T>(http: HttpClient, url: string, options: PagesOptions<T> | KeptPagesOptions<T>): Promise<(T | Kept)[]> {
  const { key, limit, signal, headers, maxPages = 100_000, pick } = options;
  // The overloads tie `onPage`'s records to `kept`: without it, no Kept is ever handed over.
  const onPage = options.onPage as ((records: (T | Kept)[]) => void) | undefined;
  const kept = 'kept' in options ? options.kept : undefined;
  const markerOf = options.markerOf ?? ((r: unknown) => (r as { id?: unknown } | null)?.id?.toString());
  const base = { ...options.params, ...(limit !== undefined ? { limit } : {}) };
  const records: (T | Kept)[] = [];
  const seen = new Set<string>();
  // The next page is asked for before this one is handed over (below): a delivery that throws
  // leaves a request in flight, which this aborts.
  const ahead = new AbortController();
  const follow = (): void => ahead.abort();
  if (signal?.aborted) ahead.abort();
  else signal?.addEventListener('abort', follow, { once: true });
  const pageAt = async (params: QueryParams): Promise<{ items: (T | Kept)[]; page: unknown; marker: () => string | undefined; where: () => string }> => {
    // The URL is built (axios' getUri, then the secrets masked: a tenth of a page's set-up) only
    // for a message; the params as the query has them tell the pages apart (the path is the same).
    const where = (): string => http.urlOf({ url, params });
    const asked = queryKey(params);
    if (seen.has(asked)) throw new Error(`${where()}: the server sent the same next page twice (pagination loop)`);
    seen.add(asked);
    // Setting a request up (axios' config merge, headers, the URL, the ClientRequest) takes about
    // 1.3 ms of this thread: work of the turn like the page's slices, so not in a turn whose
    // budget is spent (src/pause.ts; docs/scale.md, "Turns that hold no more than their budget").
    if (turnBudget.spent()) await turnBudget.pause(true);
    // Streamed, not parsed whole: JSON.parse of a 2 MB Nova page blocked the event loop for
    // 15-45 ms on a loaded 2-core machine; read record by record as chunks arrive, no block is
    // longer than a chunk's records (docs/scale.md, "The push path during a big snapshot").
    // The page's last element, by its index: kept ones come in their batch's order, and those the
    // hub refused after the others. A kept one's marker is its id (told by `onKept` just before).
    let last: unknown;
    let lastKept: string | undefined;
    let lastAt = -1;
    let keptId: string | undefined;
    const { records: items, rest: page } = await http.getEach<T | Kept>(url, {
      select: key === null ? '[*]' : `${key}[*]`,
      ...(typeof pick === 'object' ? { pick } : {}),
      each: (item, keys) => {
        const at = typeof keys[0] === 'number' ? keys[0] : lastAt + 1;
        if (at > lastAt) {
          lastAt = at;
          last = item;
          lastKept = item instanceof Kept ? keptId : undefined;
        }
        if (item instanceof Kept) return item;
        return typeof pick === 'function' && item !== null && typeof item === 'object' ? pick(item as T) : (item as T);
      },
      ...(kept !== undefined ? { kept: keptSelect(kept, url, (id) => (keptId = id)) } : {}),
      params,
      signal: ahead.signal,
      ...(headers ? { headers } : {}),
    });
    return { items, page, marker: () => lastKept ?? markerOf(last), where };
  };
  try {
    let pending = pageAt(base);
    for (let pageNo = 1; ; pageNo += 1) {
      const { items, page, marker: markerOfLast, where } = await pending;
      // The selected list is left empty in `rest`: its kind is checked there.
      const list = key === null ? page : page !== null && typeof page === 'object' ? (page as Record<string, unknown>)[key] : undefined;
      if (!Array.isArray(list)) throw new Error(`GET ${where()}: expected ${key === null ? 'a JSON array' : `a JSON object with a "${key}" list`}`);
      const href = key === null ? null : nextHref(page as Record<string, unknown>, key, options.next);
      let params: QueryParams | undefined;
      if (typeof href === 'string') {
        params = { ...base, ...Object.fromEntries(new URL(href, 'http://link.invalid/').searchParams) };
      } else if (href === null && limit !== undefined && items.length >= limit && items.length > 0) {
        const marker = markerOfLast();
        if (marker !== undefined) params = { ...base, marker };
      }
      const more = params !== undefined && pageNo < maxPages;
      // The next page is asked for first: its request is set up in what is left of this turn's
      // budget (or the next turn's), and the server prepares it while this one is normalized.
      if (more) {
        pending = pageAt(params!);
        // Awaited at the next round; until then a rejection is not unhandled.
        pending.catch(() => undefined);
      }
      if (onPage !== undefined) {
        if (items.length > 0) onPage(items);
      } else for (const item of items) records.push(item);
      if (params === undefined) return records;
      if (!more) throw new Error(`GET ${where()}: more than ${maxPages} pages, giving up`);
    }
  } catch (e) {
    ahead.abort();
    throw e;
  } finally {
    signal?.removeEventListener('abort', follow);
  }
}

/**
 * A page's {@link KeptSelect}: remembered under the source's family and the request's path, and
 * resolved by the hub. `told` hears each id before its record is handed to `each`.
 */
function keptSelect(kept: KeptPages, path: string, told: (id: string) => void): KeptSelect {
  const { paging, type, id } = kept;
  return {
    family: `${paging.family} ${path}`,
    generation: paging.generation,
    id,
    base: () => paging.lookup.base(),
    onKept: (key, base) => {
      told(key);
      return paging.lookup.kept(type, key, base);
    },
  };
}

/** What every REST poll source of a monitoring system is configured with. */
export interface RestPollOptions extends PollTiming {
  /** Base URL, with a trailing slash so relative paths resolve below it. */
  url: string;
  username?: string;
  password?: string;
  backoff: BackoffOptions;
  tls?: TlsOptions;
  maxResponseBytes: number;
  maxResponseItems: number;
}

/**
 * Reads the shared keys of a REST poll source: `url` (http or https), `username` and `password`
 * (basic auth, together or not at all), `interval`, `timeout`, `missesBeforeDelete`, `backoff`,
 * `maxBackoff`, `tls` ({ca, cert, key, servername, insecure}, src/tls.ts), `maxResponseSize`
 * (default 64MiB) and `maxResponseItems` (default 10,000,000). `example` completes the message for a bad URL.
 */
export function readRestPollOptions(read: OptionReader, example: string): RestPollOptions {
  const url = read.string('url');
  if (!/^https?:\/\//.test(url)) read.fail('url', `expected an http(s) URL such as ${example}, got ${JSON.stringify(url)}`);
  const username = read.optionalString('username');
  const password = read.optionalString('password');
  if ((username === undefined) !== (password === undefined)) read.fail(username === undefined ? 'username' : 'password', 'username and password go together');
  const limits = readHttpLimits(read);
  if (limits.tls && !url.startsWith('https://')) read.fail('tls', `is set but url is not https:// (${JSON.stringify(safeUrl(url))})`);
  return {
    url: url.endsWith('/') ? url : `${url}/`,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...readPollTiming(read, 20_000),
    backoff: { initialMs: read.duration('backoff', 1000), maxMs: read.duration('maxBackoff', 60_000) },
    ...limits,
  };
}

/**
 * The keys every REST poll source shares beyond its URL: `tls`, `maxResponseSize` (a body read
 * whole; one element of a streamed one) and `maxResponseItems` (the elements of a streamed body).
 */
export function readHttpLimits(read: OptionReader): { tls?: TlsOptions; maxResponseBytes: number; maxResponseItems: number } {
  const tls = readTlsOptions(read);
  return {
    ...(tls ? { tls } : {}),
    maxResponseBytes: read.bytes('maxResponseSize', DEFAULT_MAX_RESPONSE_BYTES),
    maxResponseItems: read.number('maxResponseItems', DEFAULT_MAX_RESPONSE_ITEMS, { min: 1, integer: true }),
  };
}

/**
 * The HTTP client of a REST poll source. One request may not use the whole poll budget: the
 * poll's `requestsPerPoll` requests and one retry must fit in its timeout.
 */
export function restPollClient(
  options: RestPollOptions,
  context: { name: string; scheduler: SchedulerLike; log: Logger },
  requestsPerPoll: number,
): HttpClient {
  return createHttpClient({
    baseUrl: options.url,
    ...(options.username !== undefined && options.password !== undefined ? { basicAuth: { username: options.username, password: options.password } } : {}),
    timeoutMs: Math.max(1, Math.floor(options.timeoutMs / (requestsPerPoll + 1))),
    retries: 1,
    backoff: options.backoff,
    scheduler: context.scheduler,
    log: context.log,
    name: context.name,
    ...(options.tls ? { tls: options.tls } : {}),
    maxResponseBytes: options.maxResponseBytes,
    maxResponseItems: options.maxResponseItems,
  });
}

/**
 * A REST poll source's stream: {@link pollSnapshots} timed by its options, reading what its
 * client received (each snapshot says what it read; a long poll logs its progress on the
 * client's logger).
 */
export function restPollSnapshots<R>(
  http: HttpClient,
  options: RestPollOptions,
  context: { name: string; scheduler: SchedulerLike; log: Logger; types: readonly EntityType[] },
  fetch: (attempt: PollAttempt) => Promise<R[]>,
): Observable<SourceSignal<R>> {
  return pollSnapshots<R>(fetch, {
    types: context.types,
    source: context.name,
    intervalMs: options.intervalMs,
    timeoutMs: options.timeoutMs,
    backoff: options.backoff,
    scheduler: context.scheduler,
    missesBeforeDelete: options.missesBeforeDelete,
    progressEveryMs: options.progressEveryMs,
    received: () => http.received,
    log: context.log,
  });
}
