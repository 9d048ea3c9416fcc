/**
 * Reading untyped config (parsed YAML) into typed options, with errors that name the path of the
 * bad field: `sources[1].interval: expected a duration such as 30s, 500ms or 5m, got "soon"`.
 */

/** A config that cannot be used; `path` is where in the file the problem is. */
export class ConfigError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
    this.name = 'ConfigError';
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
}

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `30s`, `500ms`, `5m`, `1h`, or a number of seconds → milliseconds. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  if (typeof value !== 'string') return undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 's']!);
}

const SIZE = /^(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?$/i;
const UNIT_BYTES: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };

/** `64MiB`, `512KiB`, `10MB`, `1GiB`, or a number of bytes → bytes. */
export function parseSize(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const n = Math.round(Number(m[1]) * UNIT_BYTES[(m[2] ?? 'b').toLowerCase()]!);
  return n > 0 ? n : undefined;
}

/**
 * Reads the fields of one mapping of the config. Every getter names the field's full path when
 * it refuses a value; `done()` refuses fields nobody asked for (typos such as `intervall`).
 */
export class OptionReader {
  private readonly seen = new Set<string>();
  readonly value: Record<string, unknown>;

  constructor(
    value: unknown,
    readonly path: string,
    private readonly ignore: readonly string[] = [],
    /** Folder relative file paths in this mapping are resolved against (the config file's). */
    readonly dir: string = process.cwd(),
  ) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(path, `expected a mapping, got ${describe(value)}`);
    }
    this.value = value as Record<string, unknown>;
  }

  /** Path of a field of this mapping. */
  at(key: string | number): string {
    return typeof key === 'number' ? `${this.path}[${key}]` : this.path ? `${this.path}.${key}` : key;
  }

  fail(key: string, problem: string): never {
    throw new ConfigError(this.at(key), problem);
  }

  has(key: string): boolean {
    return this.value[key] !== undefined;
  }

  /** The raw value, marked as read. */
  raw(key: string): unknown {
    this.seen.add(key);
    return this.value[key];
  }

  optionalString(key: string): string | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (typeof v !== 'string' || v === '') this.fail(key, `expected a non-empty string, got ${describe(v)}`);
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.optionalString(key) ?? fallback;
    if (v === undefined) this.fail(key, 'is required');
    return v;
  }

  oneOf<T extends string>(key: string, choices: readonly T[], fallback?: T): T {
    const v = this.optionalString(key) ?? fallback;
    if (v === undefined) this.fail(key, `is required (one of ${choices.join(', ')})`);
    if (!choices.includes(v as T)) this.fail(key, `expected one of ${choices.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  optionalNumber(key: string, { min, integer = false }: { min?: number; integer?: boolean } = {}): number | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) this.fail(key, `expected a number, got ${describe(v)}`);
    if (integer && !Number.isInteger(n)) this.fail(key, `expected a whole number, got ${n}`);
    if (min !== undefined && n < min) this.fail(key, `expected at least ${min}, got ${n}`);
    return n;
  }

  number(key: string, fallback: number, limits: { min?: number; integer?: boolean } = {}): number {
    return this.optionalNumber(key, limits) ?? fallback;
  }

  boolean(key: string, fallback: boolean): boolean {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'boolean') this.fail(key, `expected true or false, got ${describe(v)}`);
    return v;
  }

  /** A duration in ms: `30s`, `500ms`, `5m`, `1h`, or a number of seconds. */
  duration(key: string, fallbackMs: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallbackMs;
    const ms = parseDuration(v);
    if (ms === undefined) this.fail(key, `expected a duration such as 30s, 500ms or 5m, got ${describe(v)}`);
    return ms;
  }

  /** A size in bytes: `64MiB`, `512KiB`, `10MB`, or a number of bytes. */
  bytes(key: string, fallback: number): number {
    const v = this.raw(key);
    if (v === undefined || v === null) return fallback;
    const n = parseSize(v);
    if (n === undefined) this.fail(key, `expected a size such as 64MiB, 512KiB or a number of bytes, got ${describe(v)}`);
    return n;
  }

  optionalStringList(key: string): string[] | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list)) this.fail(key, `expected a list of strings, got ${describe(v)}`);
    return list.map((item, i) => {
      if (typeof item !== 'string' || item === '') {
        throw new ConfigError(`${this.at(key)}[${i}]`, `expected a non-empty string, got ${describe(item)}`);
      }
      return item;
    });
  }

  stringList(key: string, fallback: string[]): string[] {
    return this.optionalStringList(key) ?? fallback;
  }

  /** A nested mapping, read with its own reader (undefined when absent). */
  optionalObject(key: string): OptionReader | undefined {
    const v = this.raw(key);
    if (v === undefined || v === null) return undefined;
    return new OptionReader(v, this.at(key), [], this.dir);
  }

  object(key: string): OptionReader {
    const r = this.optionalObject(key);
    if (!r) this.fail(key, 'is required');
    return r;
  }

  /** A list of mappings, each with its own reader. */
  objectList(key: string): OptionReader[] {
    const v = this.raw(key);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(key, `expected a list, got ${describe(v)}`);
    return v.map((item, i) => new OptionReader(item, `${this.at(key)}[${i}]`, [], this.dir));
  }

  /** Refuses any field that no getter read. */
  done(): void {
    for (const key of Object.keys(this.value)) {
      if (!this.seen.has(key) && !this.ignore.includes(key)) this.fail(key, 'is not a known option here');
    }
  }
}
