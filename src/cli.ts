import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { config as rxConfig } from 'rxjs';
import { loadConfig } from './config.js';
import { LOG_LEVELS, type LogLevel, createLogger, errorMessage } from './log.js';
import { ConfigError } from './options.js';
import type { Service } from './service.js';

const USAGE = `usage: synchronizer --config FILE [--log LEVEL] [--check]

  --config FILE   the service config (YAML); default: $SYNCHRONIZER_CONFIG
  --log LEVEL     ${LOG_LEVELS.join(' | ')}; overrides the config's log
  --check         check the config and its plugins, then exit
  --version       print the version, then exit

Events go to stdout as one JSON line each; logs go to stderr.
Try it with the bundled demo: synchronizer --config ${fileURLToPath(new URL('../../docs/examples/demo.yaml', import.meta.url))}`;

/** This package's version, from its package.json (dist/src/cli.js -> ../../package.json). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Between two one-line summaries in the log. */
const SUMMARY_INTERVAL_MS = 60_000;

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, log: { type: 'string' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'V' } } });
  } catch (e) {
    process.stderr.write(`synchronizer: ${errorMessage(e)}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (args.values.version) {
    process.stdout.write(`synchronizer ${version()}\n`);
    return 0;
  }
  const file = args.values.config ?? (process.env.SYNCHRONIZER_CONFIG || undefined);
  if (file === undefined) {
    process.stderr.write(`synchronizer: no config: pass --config FILE or set SYNCHRONIZER_CONFIG\n${USAGE}\n`);
    return 2;
  }
  const level = args.values.log;
  if (level !== undefined && !LOG_LEVELS.includes(level as LogLevel)) {
    process.stderr.write(`synchronizer: --log must be one of ${LOG_LEVELS.join(', ')}\n`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig(file);
  } catch (e) {
    const what = e instanceof ConfigError ? 'invalid config' : 'cannot load config';
    process.stderr.write(`synchronizer: ${what} ${file}: ${errorMessage(e)}\n`);
    return 2;
  }
  if (args.values.check) {
    process.stderr.write(`synchronizer: ${file} is valid (${config.sources.length} sources)\n`);
    return 0;
  }
  const log = createLogger((level as LogLevel | undefined) ?? config.log);
  // A subscriber that throws must not take the service down.
  rxConfig.onUnhandledError = (error) => log.error('unhandled error in a subscriber', { error });
  log.info('config loaded', { file });
  // Signals are taken from here on: one that comes while the service starts stops it once started.
  let signalled: string | undefined;
  let onSignal = (signal: string): void => void (signalled ??= signal);
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // Loaded only to run: prom-client, the store and the listener cost half a second a --check does not need.
  const [{ startService }, { StateError }] = await Promise.all([import('./service.js'), import('./store/lmdb.js')]);
  let service: Service;
  try {
    service = await startService(config, log, { summaryIntervalMs: SUMMARY_INTERVAL_MS });
  } catch (e) {
    if (!(e instanceof StateError)) throw e;
    // In our log like every other error (its stack and the database's own error at debug).
    log.error('the state folder cannot be used', { error: e });
    return 2;
  }
  const deadlineMs = config.shutdownDeadlineMs;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: string): void => {
      if (stopping) {
        // A second signal: the operator will not wait.
        log.warn('second signal, exiting at once', { signal, ...service.leftover() });
        resolve(1);
        return;
      }
      stopping = true;
      log.info('stopping', { signal, deadlineMs });
      const timer = setTimeout(() => {
        log.error('shutdown deadline passed, exiting with work left', { deadlineMs, ...service.leftover() });
        resolve(1);
      }, deadlineMs);
      service.stop().then(
        () => {
          clearTimeout(timer);
          resolve(0);
        },
        (e: unknown) => {
          clearTimeout(timer);
          log.error('stop failed', { error: e });
          resolve(1);
        },
      );
    };
    onSignal = shutdown;
    if (signalled !== undefined) shutdown(signalled);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`synchronizer: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
