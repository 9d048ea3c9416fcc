import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { config as rxConfig } from 'rxjs';
import { loadConfig } from './config.js';
import { LOG_LEVELS, type LogLevel, createLogger, errorMessage } from './log.js';
import { ConfigError } from './options.js';
import { type Service, startService } from './service.js';
import { StateError } from './store/lmdb.js';

const USAGE = `usage: synchronizer [--config FILE] [--log LEVEL] [--check]

  --config FILE   the service config (YAML); default: the bundled demo (docs/examples/demo.yaml)
  --log LEVEL     ${LOG_LEVELS.join(' | ')}; overrides the config's log
  --check         check the config and its plugins, then exit

Events go to stdout as one JSON line each; logs go to stderr.`;

/** The bundled demo config, relative to this file (dist/src/cli.js). */
const DEMO = fileURLToPath(new URL('../../docs/examples/demo.yaml', import.meta.url));

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, options: { config: { type: 'string', short: 'c' }, log: { type: 'string' }, check: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (e) {
    process.stderr.write(`synchronizer: ${errorMessage(e)}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const file = args.values.config ?? DEMO;
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
  rxConfig.onUnhandledError = (error) => log.error('unhandled error in a subscriber', { error: errorMessage(error) });
  log.info('config loaded', { file });
  // Signals are taken from here on: one that comes while the service starts stops it once started.
  let signalled: string | undefined;
  let onSignal = (signal: string): void => void (signalled ??= signal);
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  let service: Service;
  try {
    service = await startService(config, log);
  } catch (e) {
    if (!(e instanceof StateError)) throw e;
    process.stderr.write(`synchronizer: ${errorMessage(e)}\n`);
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
          log.error('stop failed', { error: errorMessage(e) });
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
