/**
 * The Kubernetes transport: a cluster's credentials (kubeconfig or in-cluster service account) and
 * its collections as list-then-watch resources ({@link listWatch}), through `@kubernetes/client-node`.
 */
import { isAbsolute, resolve } from 'node:path';
import {
  ApiException,
  type ConfigurationOptions,
  CoreV1Api,
  KubeConfig,
  Observable as KubeObservable,
  type ObservableMiddleware,
  type RequestContext,
  type ResponseContext,
  Watch,
} from '@kubernetes/client-node';
import { Observable } from 'rxjs';
import type { EntityType } from './model.js';
import { ExpiredError, type ListPage, type ListWatchResource, type WatchEvent } from './listWatch.js';
import type { OptionReader } from './options.js';

/** Where the cluster's address and credentials come from. */
export interface KubeAccessOptions {
  /** A kubeconfig file; absent: `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster account. */
  kubeconfig?: string;
  /** A context of that kubeconfig other than its current one. */
  context?: string;
  /** The pod's service account (`KUBERNETES_SERVICE_HOST`/`_PORT` and its mounted token and CA). */
  inCluster: boolean;
}

/** Reads `kubeconfig`, `context` and `inCluster`. */
export function readKubeAccessOptions(read: OptionReader): KubeAccessOptions {
  const kubeconfig = read.optionalString('kubeconfig');
  const context = read.optionalString('context');
  const inCluster = read.boolean('inCluster', false);
  if (inCluster && kubeconfig !== undefined) read.fail('inCluster', 'inCluster and kubeconfig exclude each other');
  if (inCluster && context !== undefined) read.fail('context', 'a context is chosen in a kubeconfig, not with inCluster');
  return {
    ...(kubeconfig !== undefined ? { kubeconfig } : {}),
    ...(context !== undefined ? { context } : {}),
    inCluster,
  };
}

/**
 * The KubeConfig the options name (a relative kubeconfig path is taken from `configDir`, the
 * config file's folder); throws naming the file or context when it cannot be used.
 */
export function loadKubeConfig(options: KubeAccessOptions, configDir: string): KubeConfig {
  const kc = new KubeConfig();
  const file = options.kubeconfig === undefined ? undefined : isAbsolute(options.kubeconfig) ? options.kubeconfig : resolve(configDir, options.kubeconfig);
  if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('inCluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod?)');
    }
    kc.loadFromCluster();
  } else if (file !== undefined) {
    try {
      kc.loadFromFile(file);
    } catch (error) {
      throw new Error(`kubeconfig ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    kc.loadFromDefault();
  }
  if (options.context !== undefined) {
    if (!kc.getContextObject(options.context)) throw new Error(`kubeconfig ${file ?? '(default)'}: no context named ${JSON.stringify(options.context)}`);
    kc.setCurrentContext(options.context);
  }
  if (!kc.getCurrentCluster()) throw new Error(`kubeconfig ${file ?? '(default)'}: no current cluster`);
  return kc;
}

/** A cluster's clients, shared by every collection of one source. */
export interface KubeClient {
  server: string;
  core: CoreV1Api;
  watch: Watch;
}

export function kubeClient(kc: KubeConfig): KubeClient {
  return { server: kc.getCurrentCluster()!.server, core: kc.makeApiClient(CoreV1Api), watch: new Watch(kc) };
}

/** The fields of an object's metadata every collection has. */
interface WithMetadata {
  metadata?: { resourceVersion?: string | undefined } | undefined;
}

/** One list call of the typed API, e.g. `(core, q) => core.listNode(q)`. */
export type ListCall<T> = (
  core: CoreV1Api,
  query: { limit: number; _continue?: string },
  options: ConfigurationOptions,
) => Promise<{ items: T[]; metadata?: { resourceVersion?: string | undefined; _continue?: string | undefined } | undefined }>;

export interface KubeResourceOptions<T, R> {
  /** Its cluster-wide path, e.g. `/api/v1/pods`: what the watch requests and errors name. */
  path: string;
  list: ListCall<T>;
  /** The record the source emits for one object (e.g. tagged with its kind). */
  record: (object: T) => R;
  types: readonly EntityType[];
  /** Items per list page (`limit`). */
  pageSize: number;
  /** The server ends each watch after this long (`timeoutSeconds`), s. */
  watchSeconds: number;
}

/** Per-call options that abort the request on `signal` (the typed API takes no signal, but a middleware can lay one on). */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      context.setSignal(signal);
      return new KubeObservable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new KubeObservable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

function statusOf(error: unknown): number | undefined {
  if (error instanceof ApiException) return error.code;
  const code = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The Status message of a failed API call, without the response headers ApiException prints. */
function describe(error: unknown, what: string): Error {
  if (error instanceof ApiException) {
    const body = error.body as { message?: unknown } | string | undefined;
    const message = typeof body === 'string' ? body : typeof body?.message === 'string' ? body.message : '';
    const text = `${what} failed with ${error.code}${message ? `: ${message.slice(0, 300)}` : ''}`;
    return error.code === 410 ? new ExpiredError(text) : new Error(text);
  }
  const text = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  return statusOf(error) === 410 ? new ExpiredError(text) : new Error(text);
}

/**
 * One cluster-wide collection as a list-then-watch resource: paged lists through the typed API,
 * the watch through client-node's Watch (chunked JSON lines), with bookmarks.
 */
export function kubeResource<T extends WithMetadata, R>(client: KubeClient, options: KubeResourceOptions<T, R>): ListWatchResource<R> {
  const { path, list, record, types, pageSize, watchSeconds } = options;
  return {
    name: `${client.server}${path}`,
    types,
    list: async ({ continue: token, signal }): Promise<ListPage<R>> => {
      const what = `GET ${path}${token ? ' (continued)' : ''}`;
      try {
        const page = await list(client.core, { limit: pageSize, ...(token ? { _continue: token } : {}) }, withSignal(signal));
        const resourceVersion = page.metadata?.resourceVersion;
        if (!resourceVersion) throw new Error(`${what}: the list carries no metadata.resourceVersion`);
        return { items: page.items.map(record), resourceVersion, continue: page.metadata?._continue || undefined };
      } catch (error) {
        throw error instanceof ExpiredError ? error : describe(error, what);
      }
    },
    watch: ({ resourceVersion }) =>
      new Observable<WatchEvent<R>>((subscriber) => {
        let controller: AbortController | undefined;
        const onEvent = (type: string, object: unknown): void => {
          switch (type) {
            case 'ADDED':
            case 'MODIFIED':
            case 'DELETED': {
              const version = (object as T | undefined)?.metadata?.resourceVersion;
              // Without a version the stream cannot be resumed after it: end this watch instead.
              if (typeof version !== 'string' || version === '') subscriber.error(new Error(`watch ${path}: a ${type} event without metadata.resourceVersion`));
              else subscriber.next({ type, object: record(object as T), resourceVersion: version });
              return;
            }
            case 'BOOKMARK': {
              const version = (object as WithMetadata | undefined)?.metadata?.resourceVersion;
              if (typeof version === 'string' && version !== '') subscriber.next({ type, resourceVersion: version });
              return;
            }
            case 'ERROR': {
              const status = (object ?? {}) as { code?: unknown; reason?: unknown; message?: unknown };
              subscriber.next({
                type,
                code: typeof status.code === 'number' ? status.code : undefined,
                reason: typeof status.reason === 'string' ? status.reason : undefined,
                message: typeof status.message === 'string' ? status.message : undefined,
              });
              return;
            }
            default:
              subscriber.error(new Error(`watch ${path}: unknown event type ${JSON.stringify(type)}`));
          }
        };
        const onDone = (error: unknown): void => {
          if (subscriber.closed) return;
          if (error) subscriber.error(describe(error, `watch ${path} from resourceVersion ${resourceVersion}`));
          else subscriber.complete();
        };
        client.watch
          .watch(path, { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchSeconds }, onEvent, onDone)
          .then(
            (c) => {
              if (subscriber.closed) c.abort();
              else {
                controller = c;
                subscriber.next({ type: 'OPENED' });
              }
            },
            (error: unknown) => onDone(error ?? new Error('watch failed')),
          );
        return () => controller?.abort();
      }),
  };
}
