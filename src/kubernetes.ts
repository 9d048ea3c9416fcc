/**
 * The Kubernetes transport: a cluster's credentials (kubeconfig or in-cluster service account) and
 * its collections as list-then-watch resources ({@link listWatch}), through `@kubernetes/client-node`.
 */
import { accessSync, constants } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { ConfigurationOptions, CoreV1Api, KubeConfig, ObservableMiddleware, RequestContext, ResponseContext, Watch } from '@kubernetes/client-node';
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

type ClientNode = typeof import('@kubernetes/client-node');
let clientNode: Promise<ClientNode> | undefined;

/**
 * client-node, imported on first use: its generated API takes seconds to load, which every CLI
 * start would pay even without a kubernetes source.
 */
function loadClientNode(): Promise<ClientNode> {
  clientNode ??= import('@kubernetes/client-node').catch((error: unknown) => {
    clientNode = undefined;
    throw error;
  });
  return clientNode;
}

/** The kubeconfig file the options name, relative to `configDir` (the config file's folder). */
function kubeconfigFile(options: KubeAccessOptions, configDir: string): string | undefined {
  return options.kubeconfig === undefined ? undefined : isAbsolute(options.kubeconfig) ? options.kubeconfig : resolve(configDir, options.kubeconfig);
}

/**
 * What can be checked when the source is created, without loading client-node: the kubeconfig
 * file is readable, or the in-cluster environment is there. Throws naming what is missing.
 */
export function checkKubeAccess(options: KubeAccessOptions, configDir: string): void {
  if (options.inCluster) {
    if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
      throw new Error('inCluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not running in a pod?)');
    }
    return;
  }
  const file = kubeconfigFile(options, configDir);
  if (file === undefined) return;
  try {
    accessSync(file, constants.R_OK);
  } catch (error) {
    throw new Error(`kubeconfig ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** The KubeConfig the options name; throws naming the file or context when it cannot be used. */
export async function loadKubeConfig(options: KubeAccessOptions, configDir: string): Promise<KubeConfig> {
  checkKubeAccess(options, configDir);
  const { KubeConfig } = await loadClientNode();
  const kc = new KubeConfig();
  const file = kubeconfigFile(options, configDir);
  if (options.inCluster) kc.loadFromCluster();
  else if (file !== undefined) {
    try {
      kc.loadFromFile(file);
    } catch (error) {
      throw new Error(`kubeconfig ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else kc.loadFromDefault();
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
  lib: ClientNode;
}

/**
 * The cluster's clients, made once when first needed and shared; a failure (a context the
 * kubeconfig lacks) is thrown to that caller and tried again by the next one.
 */
export function kubeClient(options: KubeAccessOptions, configDir: string): () => Promise<KubeClient> {
  let client: Promise<KubeClient> | undefined;
  return () => {
    client ??= (async () => {
      const kc = await loadKubeConfig(options, configDir);
      const lib = await loadClientNode();
      return { server: kc.getCurrentCluster()!.server, core: kc.makeApiClient(lib.CoreV1Api), watch: new lib.Watch(kc), lib };
    })().catch((error: unknown) => {
      client = undefined;
      throw error;
    });
    return client;
  };
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
function withSignal(lib: ClientNode, signal: AbortSignal): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      context.setSignal(signal);
      return new lib.Observable(Promise.resolve(context));
    },
    post: (context: ResponseContext) => new lib.Observable(Promise.resolve(context)),
  };
  return { middleware: [middleware], middlewareMergeStrategy: 'append' };
}

function statusOf(lib: ClientNode | undefined, error: unknown): number | undefined {
  if (lib && error instanceof lib.ApiException) return error.code;
  const code = (error as { statusCode?: unknown } | null)?.statusCode;
  return typeof code === 'number' ? code : undefined;
}

/** The Status message of a failed API call, without the response headers ApiException prints. */
function describe(lib: ClientNode | undefined, error: unknown, what: string): Error {
  if (lib && error instanceof lib.ApiException) {
    const body = error.body as { message?: unknown } | string | undefined;
    const message = typeof body === 'string' ? body : typeof body?.message === 'string' ? body.message : '';
    const text = `${what} failed with ${error.code}${message ? `: ${message.slice(0, 300)}` : ''}`;
    return error.code === 410 ? new ExpiredError(text) : new Error(text);
  }
  const text = `${what}: ${error instanceof Error ? error.message : String(error)}`;
  return statusOf(lib, error) === 410 ? new ExpiredError(text) : new Error(text);
}

/**
 * One cluster-wide collection as a list-then-watch resource: paged lists through the typed API,
 * the watch through client-node's Watch (chunked JSON lines), with bookmarks.
 */
export function kubeResource<T extends WithMetadata, R>(connect: () => Promise<KubeClient>, options: KubeResourceOptions<T, R>): ListWatchResource<R> {
  const { path, list, record, types, pageSize, watchSeconds } = options;
  return {
    name: path,
    types,
    list: async ({ continue: token, signal }): Promise<ListPage<R>> => {
      const client = await connect();
      const what = `GET ${client.server}${path}${token ? ' (continued)' : ''}`;
      try {
        const page = await list(client.core, { limit: pageSize, ...(token ? { _continue: token } : {}) }, withSignal(client.lib, signal));
        const resourceVersion = page.metadata?.resourceVersion;
        if (!resourceVersion) throw new Error(`${what}: the list carries no metadata.resourceVersion`);
        return { items: page.items.map(record), resourceVersion, continue: page.metadata?._continue || undefined };
      } catch (error) {
        throw error instanceof ExpiredError ? error : describe(client.lib, error, what);
      }
    },
    watch: ({ resourceVersion }) =>
      new Observable<WatchEvent<R>>((subscriber) => {
        let controller: AbortController | undefined;
        let lib: ClientNode | undefined;
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
          if (error) subscriber.error(describe(lib, error, `watch ${path} from resourceVersion ${resourceVersion}`));
          else subscriber.complete();
        };
        connect()
          .then((client) => {
            lib = client.lib;
            if (subscriber.closed) return undefined;
            return client.watch.watch(path, { resourceVersion, allowWatchBookmarks: true, timeoutSeconds: watchSeconds }, onEvent, onDone);
          })
          .then(
            (c) => {
              if (c === undefined) return;
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
