import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type SchedulerLike, asyncScheduler } from 'rxjs';
import { builtinSources } from '../sources/index.js';
import { DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_TOMBSTONE_MS } from '../operators/diffAgainstBaseline.js';
import { LOG_LEVELS, type LogLevel, type Logger, errorMessage, silentLogger } from './log.js';
import type { EntityType } from './model.js';
import { ConfigError, OptionReader } from './options.js';
import { SLICE_MS } from './pause.js';
import { scopeNameProblem } from './scope.js';
import { parseYamlQuietly, resolveReferences } from './secrets.js';
import type { Source, SourcePlugin } from './source.js';
import { type SinkPlugin, builtinSinks } from './sinks/index.js';
import { type ClusterOptions, readClusterOptions } from './cluster/config.js';

/** One configured source: its plugin and checked options, not yet created. */
export interface SourceEntry {
  name: string;
  use: string;
  /** The cloud or region it sees (src/scope.ts). */
  scope?: string;
  plugin: SourcePlugin<unknown>;
  options: unknown;
}

export interface SinkEntry {
  use: string;
  plugin: SinkPlugin<unknown>;
  options: unknown;
}

/** A checked service config (synchronizer.yaml). */
export interface ServiceConfig {
  /** Folder the config file is in; relative paths are resolved against it. */
  configDir: string;
  types?: EntityType[];
  log: LogLevel;
  tombstoneMs: number;
  /** Observations stamped further ahead of the local clock are taken at the local time (DESIGN rule 8). */
  maxClockSkewMs: number;
  bufferSize: number;
  sources: SourceEntry[];
  sinks: SinkEntry[];
  /** Where health and Prometheus metrics are served (`host:port`), if anywhere. */
  listen?: string;
  /** The state folder (resolved against the config's folder), when the baseline is kept across restarts. */
  state?: { dir: string };
  /** How long a SIGTERM/SIGINT may take to drain, ms (default 10 s); past it the process exits 1. */
  shutdownDeadlineMs: number;
  /** Sliced work (big responses read, big snapshots normalized and prepared) per turn of the event loop, ms (src/pause.ts). */
  sliceMs: number;
  /** Several instances of this config on one RabbitMQ (docs/operations.md, "A cluster"). */
  cluster?: ClusterOptions;
}

function isPlugin(value: unknown): value is SourcePlugin<unknown> {
  const v = value as Partial<SourcePlugin<unknown>> | null;
  return typeof v === 'object' && v !== null && typeof v.options === 'function' && typeof v.create === 'function';
}

/** Loads a plugin module by path (relative to the config file) and checks it implements the contract. */
async function loadPlugin(use: string, configDir: string, path: string): Promise<SourcePlugin<unknown>> {
  const builtin = builtinSources[use];
  if (builtin) return builtin;
  if (!use.startsWith('.') && !isAbsolute(use)) {
    throw new ConfigError(path, `unknown source ${JSON.stringify(use)}: use one of ${Object.keys(builtinSources).join(', ')}, or a module path such as ./plugins/my-source.js`);
  }
  const file = resolve(configDir, use);
  let module: { default?: unknown };
  try {
    module = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (e) {
    throw new ConfigError(path, `cannot load plugin module ${file}: ${errorMessage(e)}`);
  }
  if (!isPlugin(module.default)) {
    throw new ConfigError(path, `${file} does not implement the source contract: its default export must have options(read) and create(options, context) functions`);
  }
  return module.default;
}

/**
 * Checks a parsed config document (synchronizer.yaml) and loads its plugins. Throws a ConfigError
 * naming the path of the first bad field.
 */
export async function parseConfig(doc: unknown, configDir: string): Promise<ServiceConfig> {
  const read = new OptionReader(resolveReferences(doc ?? {}, configDir), '', [], configDir);
  const types = read.optionalStringList('types');
  const log = read.oneOf('log', LOG_LEVELS, 'info');
  const tombstoneMs = read.duration('tombstone', DEFAULT_TOMBSTONE_MS);
  const maxClockSkewMs = read.duration('maxClockSkew', DEFAULT_MAX_CLOCK_SKEW_MS);
  const bufferSize = read.number('bufferSize', 10_000, { min: 1, integer: true });
  const listen = read.optionalString('listen');
  const stateReader = read.optionalObject('state');
  let state: { dir: string } | undefined;
  if (stateReader) {
    state = { dir: resolve(configDir, stateReader.string('dir')) };
    stateReader.done();
  }
  const shutdownDeadlineMs = read.duration('shutdownDeadline', 10_000);
  const sliceMs = read.duration('sliceTime', SLICE_MS);
  if (sliceMs <= 0) throw new ConfigError('sliceTime', 'expected a duration of at least 1ms, such as 5ms');
  const clusterReader = read.optionalObject('cluster');
  let cluster: ClusterOptions | undefined;
  if (clusterReader) {
    cluster = readClusterOptions(clusterReader);
    clusterReader.done();
  }
  if (listen !== undefined && !/^[^\s:]*:\d+$/.test(listen)) throw new ConfigError('listen', `expected host:port such as 127.0.0.1:9464, got ${JSON.stringify(listen)}`);
  const sourceReaders = read.objectList('sources');
  if (sourceReaders.length === 0) throw new ConfigError('sources', 'at least one source is required');
  const names = new Set<string>();
  const sources: SourceEntry[] = [];
  for (const s of sourceReaders) {
    const name = s.string('name');
    if (names.has(name)) throw new ConfigError(s.at('name'), `${JSON.stringify(name)} is already the name of another source`);
    names.add(name);
    const use = s.string('use');
    const scope = s.optionalString('scope');
    const scopeProblem = scope === undefined ? undefined : scopeNameProblem(scope);
    if (scopeProblem !== undefined) throw new ConfigError(s.at('scope'), scopeProblem);
    const plugin = await loadPlugin(use, configDir, s.at('use'));
    const optionsReader = new OptionReader(s.value, s.path, ['name', 'use', 'scope'], configDir);
    const options = plugin.options(optionsReader);
    optionsReader.done();
    sources.push({ name, use, ...(scope === undefined ? {} : { scope }), plugin, options });
  }
  const sinkReaders = read.has('sinks') ? read.objectList('sinks') : [new OptionReader({ use: 'stdout' }, 'sinks[0]')];
  const sinks: SinkEntry[] = [];
  for (const s of sinkReaders) {
    const use = s.string('use');
    const plugin = builtinSinks[use];
    if (!plugin) throw new ConfigError(s.at('use'), `unknown sink ${JSON.stringify(use)}: use one of ${Object.keys(builtinSinks).join(', ')}`);
    const optionsReader = new OptionReader(s.value, s.path, ['use'], configDir);
    const options = plugin.options(optionsReader);
    optionsReader.done();
    sinks.push({ use, plugin, options });
  }
  cluster?.everywhere.forEach((name, i) => {
    if (!names.has(name)) throw new ConfigError(`cluster.everywhere[${i}]`, `${JSON.stringify(name)} is not the name of a configured source`);
  });
  cluster?.partitioned.forEach((name, i) => {
    const entry = sources.find((s) => s.name === name);
    if (entry?.use !== 'openstack.notifications') throw new ConfigError(`cluster.partitioned[${i}]`, `${JSON.stringify(name)} is not the name of a configured openstack.notifications source`);
  });
  read.done();
  return { configDir, ...(types ? { types } : {}), log, tombstoneMs, maxClockSkewMs, bufferSize, sources, sinks, ...(listen ? { listen } : {}), ...(state ? { state } : {}), shutdownDeadlineMs, sliceMs, ...(cluster ? { cluster } : {}) };
}

/** Reads and checks a config file. */
export async function loadConfig(file: string): Promise<ServiceConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError('', `cannot read config file ${file}: ${errorMessage(e)}`);
  }
  let doc: unknown;
  try {
    doc = parseYamlQuietly(text, file);
  } catch (e) {
    throw new ConfigError('', errorMessage(e));
  }
  return parseConfig(doc, dirname(resolve(file)));
}

export interface CreateSourceContext {
  scheduler?: SchedulerLike;
  log?: Logger;
  configDir?: string;
}

/** Creates the configured sources. */
export function createSources(entries: readonly SourceEntry[], context: CreateSourceContext = {}): Source<unknown>[] {
  const { scheduler = asyncScheduler, log = silentLogger, configDir = process.cwd() } = context;
  return entries.map((e) => {
    const source = e.plugin.create(e.options, { name: e.name, ...(e.scope === undefined ? {} : { scope: e.scope }), scheduler, log: log.child({ source: e.name }), configDir });
    // The config's scope is the source's, whatever the plugin set.
    if (e.scope !== undefined) source.scope = e.scope;
    return source;
  });
}

/**
 * Creates one source from a config-style entry, for library use:
 * `createSource({ name: 'topology', use: 'static', file: './topology.yaml' })`.
 */
export async function createSource(entry: { name: string; use: string } & Record<string, unknown>, context: CreateSourceContext = {}): Promise<Source<unknown>> {
  const configDir = context.configDir ?? process.cwd();
  const config = await parseConfig({ sources: [entry], sinks: [] }, configDir);
  return createSources(config.sources, { ...context, configDir })[0]!;
}
