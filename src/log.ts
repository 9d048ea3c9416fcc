/** Log levels, most verbose first. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export type LogFields = Record<string, unknown>;

/** The logger every part receives; the service writes it to stderr, a library user may bring theirs. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. the source name). */
  child(fields: LogFields): Logger;
}

/**
 * One JSON object per line: `{"time","level","msg",...fields}` (stderr by default). A field that
 * is an Error is written as its message; at level debug its stack follows as `<field>Stack`, and
 * the stacks of its causes after it (`caused by: …`), since a wrapped error's own stack only says
 * where it was wrapped.
 */
export function createLogger(
  level: LogLevel = 'info',
  write: (line: string) => void = (line) => process.stderr.write(line),
  base: LogFields = {},
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const emit = (lvl: Exclude<LogLevel, 'silent'>, msg: string, fields?: LogFields): void => {
    if (LOG_LEVELS.indexOf(lvl) < threshold) return;
    const line: LogFields = { time: new Date().toISOString(), level: lvl, msg, ...base };
    for (const [k, v] of Object.entries(fields ?? {})) {
      if (!(v instanceof Error)) line[k] = v;
      else {
        line[k] = v.message;
        if (threshold === 0 && v.stack) line[`${k}Stack`] = stackWithCauses(v);
      }
    }
    write(JSON.stringify(line) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(level, write, { ...base, ...fields }),
  };
}

/** Causes followed at most this deep: a cycle of causes must not loop. */
const MAX_CAUSES = 5;

function stackWithCauses(error: Error): string {
  let text = error.stack ?? error.message;
  let cause: unknown = error.cause;
  for (let depth = 0; cause !== undefined && cause !== null && depth < MAX_CAUSES; depth += 1) {
    text += `\ncaused by: ${cause instanceof Error ? (cause.stack ?? cause.message) : String(cause)}`;
    cause = cause instanceof Error ? cause.cause : undefined;
  }
  return text;
}

/** A logger that drops everything (library default). */
export const silentLogger: Logger = createLogger('silent', () => {});

/** Anything thrown, as an Error (a thrown string or object gets one, so the log has a stack to show). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Message of anything thrown. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
