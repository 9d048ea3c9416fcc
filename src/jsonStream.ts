/**
 * A streaming reader of one JSON document (RFC 8259) that hands over the elements at one path —
 * the items of a list, or the members of a mapping with their keys — one by one as their bytes
 * arrive, so a reader holds one element's raw text (plus a chunk), never the whole body. The
 * transport (src/http.ts, `select`) feeds it a response body chunk by chunk.
 *
 * What it scans itself: the containers on the path (their keys, `:`, `,`, brackets, whitespace)
 * and the extent of every other value (brackets and strings, escapes included). Each value it has
 * found the end of — an element, or anything off the path — is then read by `JSON.parse`, which
 * checks its grammar strictly and is several times faster than a tokenizer written in JavaScript
 * (docs/scale.md, "Poll responses"). Everything off the path stays in a small document, `rest`,
 * in which the selected containers are left empty: the reader checks the envelope there
 * (`status`, `result`, the kind of the list).
 *
 * Bounded against hostile bodies: one element, and the document around the elements, may each
 * take at most `maxBytes` bytes; at most `maxElements` elements are handed over; a value may nest
 * at most `maxDepth` levels deep. Errors name the byte offset where the problem is.
 */

/** The key of a wildcard step: a member's name, or an item's index. */
export type SelectKey = string | number;

/** One step of a path: a named member, any member (`*`), or any item (`[*]`). */
type Step = { kind: 'name'; name: string } | { kind: 'member' } | { kind: 'item' };

/**
 * A path such as `[*]` (each item of a top-level list), `data.activeTargets[*]`,
 * `data.hostlist.*` (each member of a mapping) or `data.servicelist.*.*`. Names may not hold
 * `.`, `[` or `]`.
 */
export function parseSelector(selector: string): Step[] {
  const steps: Step[] = [];
  const pattern = /\[\*\]|(?:^|\.)([^.[\]]+)/y;
  let at = 0;
  while (at < selector.length) {
    pattern.lastIndex = at;
    const m = pattern.exec(selector);
    if (!m) throw new Error(`JSON path ${JSON.stringify(selector)}: cannot read it at character ${at} (expected name, .name, .* or [*])`);
    steps.push(m[0] === '[*]' ? { kind: 'item' } : m[1] === '*' ? { kind: 'member' } : { kind: 'name', name: m[1]! });
    at = pattern.lastIndex;
  }
  if (steps.length === 0) throw new Error('JSON path "": expected at least one step (e.g. [*] or data.items[*])');
  return steps;
}

/** A body that is not JSON, or one that breaks a bound. `offset`: the byte where it was found. */
export class JsonStreamError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    /** Not JSON, or valid so far but past a bound: `maxBytes`, `maxElements`, `maxDepth`. */
    readonly kind: 'syntax' | 'bytes' | 'elements' | 'depth',
  ) {
    super(message);
    this.name = 'JsonStreamError';
  }
}

export interface JsonStreamOptions {
  /** Where the elements are ({@link parseSelector}). */
  select: string;
  /** Called with each element as soon as it is complete, and the keys of the path's wildcards. May throw: the stream stops. */
  onElement: (element: unknown, keys: readonly SelectKey[]) => void;
  /**
   * Offered each element's bytes before it is parsed, with its keys: true takes the element (it is
   * then neither parsed nor handed to `onElement`), false has it parsed as usual. The bytes may be
   * a view of the chunk written: they stay as they are only while nobody writes into that chunk.
   * May throw: the stream stops. The parse worker's unchanged elements (src/parseWorker.ts).
   */
  onRaw?: (bytes: Buffer, keys: readonly SelectKey[]) => boolean;
  /** Bytes one element may take, and the document around the elements (default 64 MiB). */
  maxBytes?: number;
  /** Elements that may be handed over (default unbounded). */
  maxElements?: number;
  /** Nesting of brackets within one value (default 512). */
  maxDepth?: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;

/** The first bytes a JSON value can have: `{ [ " - 0-9 t f n`. */
const VALUE_START = new Set([LBRACE, LBRACKET, QUOTE, 0x2d, ...'0123456789tfn'.split('').map((d) => d.charCodeAt(0))]);

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** Where the structure is: what the next significant byte may be. */
const enum Mode {
  Value, // a value (the root, after `:`, after `,` in a list)
  ValueOrClose, // after `[`
  Key, // after `,` in a mapping
  KeyOrClose, // after `{`
  Colon,
  After, // after a value: `,` or the closing bracket (at the root: nothing more)
  Capture, // inside a value whose end is being looked for
  Done,
}

/** A container on the path: built here, with its off-path values and its on-path children. */
interface Frame {
  container: unknown[] | Record<string, unknown>;
  array: boolean;
  /** The member whose value comes next (mappings). */
  key: string;
  /** Children so far, taken elements included: the index of the next item. */
  count: number;
}

/** What the value being captured is. */
const enum Role {
  Element,
  OffPath,
  Key,
}

function describeByte(c: number): string {
  return c >= 0x20 && c < 0x7f ? JSON.stringify(String.fromCharCode(c)) : `byte 0x${c.toString(16).padStart(2, '0')}`;
}

function setMember(target: Record<string, unknown>, key: string, value: unknown): void {
  // JSON.parse makes "__proto__" an own member; an assignment would set the prototype.
  if (key === '__proto__') Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
  else target[key] = value;
}

/**
 * One document, fed with {@link write} and finished with {@link end}.
 *
 * Example:
 * ```ts
 * const alerts: unknown[] = [];
 * const reader = new JsonSelectStream({ select: '[*]', onElement: (a) => alerts.push(a) });
 * reader.write(Buffer.from('[{"fingerprint":"a"},'));
 * reader.write(Buffer.from('{"fingerprint":"b"}]'));
 * reader.end(); // → [] (the list, its items taken); alerts holds both
 * ```
 */
export class JsonSelectStream {
  private readonly steps: Step[];
  private readonly onElement: JsonStreamOptions['onElement'];
  private readonly onRaw: JsonStreamOptions['onRaw'];
  private readonly maxBytes: number;
  private readonly maxElements: number;
  private readonly maxDepth: number;
  /** Levels whose step is a wildcard: their keys go with each element. */
  private readonly wildcardLevels: number[];

  private readonly frames: Frame[] = [];
  /** The wildcard key at each level of the path, for the element being read. */
  private readonly keysAt: SelectKey[] = [];
  private mode: Mode = Mode.Value;
  private root: unknown = undefined;
  /** Bytes before the current chunk. */
  private offset = 0;
  /** The first bytes of a body, while they are fewer than a byte order mark. */
  private head: Buffer | undefined;
  private ending = false;
  private elements = 0;
  /** Bytes of the document around the elements (off-path values, keys). */
  private restBytes = 0;

  // The value being captured.
  private role: Role = Role.OffPath;
  private captureStart = 0;
  private pieces: Buffer[] = [];
  /** A number, true, false or null: it ends before a delimiter, not at a closing byte. */
  private scalar = false;
  /** Brackets open in the captured value. */
  private depth = 0;
  private inString = false;
  /** The string's next byte is escaped (a backslash ended the last chunk). */
  private escaped = false;

  constructor(options: JsonStreamOptions) {
    this.steps = parseSelector(options.select);
    this.onElement = options.onElement;
    this.onRaw = options.onRaw;
    this.maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.maxElements = options.maxElements ?? Number.POSITIVE_INFINITY;
    this.maxDepth = options.maxDepth ?? 512;
    this.wildcardLevels = this.steps.flatMap((s, i) => (s.kind === 'name' ? [] : [i]));
  }

  /** Bytes read so far. */
  get bytes(): number {
    return this.offset;
  }

  /** Reads the next chunk of the body; throws a {@link JsonStreamError}, or what `onElement` threw. */
  write(chunk: Buffer): void {
    let i = 0;
    if (this.offset === 0) {
      // A UTF-8 byte order mark is skipped, as axios strips it from a text body: the first three
      // bytes are looked at together, however the body was cut.
      if (this.head !== undefined) {
        chunk = Buffer.concat([this.head, chunk]);
        this.head = undefined;
      }
      if (chunk.length < 3 && !this.ending) {
        this.head = chunk;
        return;
      }
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) i = 3;
    }
    const n = chunk.length;
    while (i < n) {
      if (this.mode === Mode.Capture) {
        const end = this.scan(chunk, i);
        if (end < 0) {
          this.pieces.push(i === 0 ? chunk : chunk.subarray(i));
          this.checkCaptureSize(this.offset + n);
          break;
        }
        this.finishCapture(chunk, end);
        i = end;
        continue;
      }
      const c = chunk[i]!;
      if (isSpace(c)) {
        i += 1;
        continue;
      }
      this.structure(c, i);
      // structure() may have begun a capture at i: scan reads it from its first byte.
      if ((this.mode as Mode) !== Mode.Capture) i += 1;
    }
    this.offset += n;
  }

  /** The body ended: returns the document without its elements (their containers left empty). */
  end(): unknown {
    if (this.head !== undefined) {
      this.ending = true;
      this.write(Buffer.alloc(0));
    }
    // A scalar ends where the body does.
    if (this.mode === Mode.Capture && this.scalar) this.finishCapture(Buffer.alloc(0), 0);
    if (this.mode !== Mode.Done) {
      const what = this.offset === 0 ? 'the body is empty' : this.mode === Mode.Capture ? 'the body ended inside a value' : 'the body ended before the document did';
      throw new JsonStreamError(`${what} (at byte ${this.offset}): expected JSON`, this.offset, 'syntax');
    }
    return this.root;
  }

  private fail(message: string, at: number): never {
    throw new JsonStreamError(`${message} at byte ${at}`, at, 'syntax');
  }

  /** One significant byte outside any captured value. */
  private structure(c: number, i: number): void {
    const at = this.offset + i;
    const frame = this.frames[this.frames.length - 1];
    switch (this.mode) {
      case Mode.Value:
      case Mode.ValueOrClose:
        if (c === RBRACKET && this.mode === Mode.ValueOrClose) return this.close();
        if (!VALUE_START.has(c)) this.fail(`unexpected ${describeByte(c)}, expected a value`, at);
        return this.beginValue(c, i);
      case Mode.Key:
      case Mode.KeyOrClose:
        if (c === RBRACE && this.mode === Mode.KeyOrClose) return this.close();
        if (c !== QUOTE) this.fail(`unexpected ${describeByte(c)}, expected ${this.mode === Mode.KeyOrClose ? 'a member name or "}"' : 'a member name'}`, at);
        return this.beginCapture(Role.Key, i, false);
      case Mode.Colon:
        if (c !== COLON) this.fail(`unexpected ${describeByte(c)}, expected ":"`, at);
        this.mode = Mode.Value;
        return;
      case Mode.After:
        if (frame === undefined) this.fail(`unexpected ${describeByte(c)} after the end of the document`, at);
        if (c === COMMA) {
          this.mode = frame.array ? Mode.Value : Mode.Key;
          return;
        }
        if (c === (frame.array ? RBRACKET : RBRACE)) return this.close();
        return this.fail(`unexpected ${describeByte(c)}, expected "," or "${frame.array ? ']' : '}'}"`, at);
      case Mode.Done:
        return this.fail(`unexpected ${describeByte(c)} after the end of the document`, at);
      // Mode.Capture: write() hands a capture's bytes to scan(), never here.
    }
  }

  private close(): void {
    this.frames.pop();
    this.mode = this.frames.length === 0 ? Mode.Done : Mode.After;
  }

  /**
   * A value starts at `i`: a container on the path is built here; an element or an off-path
   * value is captured.
   */
  private beginValue(c: number, i: number): void {
    const level = this.frames.length;
    const parent = this.frames[level - 1];
    const step = level === 0 ? undefined : this.steps[level - 1]!;
    let onPath: boolean;
    if (parent === undefined) onPath = true;
    else if (parent.array) onPath = step!.kind === 'item';
    else onPath = step!.kind === 'member' || (step!.kind === 'name' && step!.name === parent.key);
    if (onPath && parent !== undefined && step!.kind !== 'name') this.keysAt[level - 1] = parent.array ? parent.count : parent.key;
    if (onPath && level === this.steps.length) return this.beginCapture(Role.Element, i, c !== LBRACE && c !== LBRACKET && c !== QUOTE);
    const next = this.steps[level];
    const wants = next === undefined ? -1 : next.kind === 'item' ? LBRACKET : LBRACE;
    if (onPath && c === wants) {
      const container: unknown[] | Record<string, unknown> = c === LBRACKET ? [] : {};
      this.attach(container);
      this.frames.push({ container, array: c === LBRACKET, key: '', count: 0 });
      this.mode = c === LBRACKET ? Mode.ValueOrClose : Mode.KeyOrClose;
      return;
    }
    this.beginCapture(Role.OffPath, i, c !== LBRACE && c !== LBRACKET && c !== QUOTE);
  }

  /** Puts a value into the container on top (or makes it the root), as the next child. */
  private attach(value: unknown): void {
    const parent = this.frames[this.frames.length - 1];
    if (parent === undefined) this.root = value;
    else if (parent.array) (parent.container as unknown[]).push(value);
    else setMember(parent.container as Record<string, unknown>, parent.key, value);
    if (parent !== undefined) parent.count += 1;
  }

  private beginCapture(role: Role, i: number, scalar: boolean): void {
    this.mode = Mode.Capture;
    this.role = role;
    this.captureStart = this.offset + i;
    this.pieces = [];
    this.scalar = scalar;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
  }

  /**
   * Looks for the end of the captured value from `i`: the index just past it, or -1 when it goes
   * on past this chunk. A scalar ends before the byte that ends it (which is left for structure).
   */
  private scan(chunk: Buffer, i: number): number {
    const n = chunk.length;
    if (this.scalar) {
      // JSON.parse names what is wrong with it.
      for (; i < n; i += 1) {
        const c = chunk[i]!;
        if (c === COMMA || c === RBRACKET || c === RBRACE || isSpace(c)) return i;
      }
      return -1;
    }
    for (; i < n; i += 1) {
      if (this.inString) {
        const q = this.stringEnd(chunk, i);
        if (q < 0) return -1;
        this.inString = false;
        if (this.depth === 0) return q + 1;
        i = q;
        continue;
      }
      const c = chunk[i]!;
      if (c === QUOTE) {
        this.inString = true;
      } else if (c === LBRACE || c === LBRACKET) {
        this.depth += 1;
        if (this.depth > this.maxDepth) {
          throw new JsonStreamError(`a value nested deeper than ${this.maxDepth} levels at byte ${this.offset + i}`, this.offset + i, 'depth');
        }
      } else if (c === RBRACE || c === RBRACKET) {
        this.depth -= 1;
        if (this.depth === 0) return i + 1;
      }
    }
    return -1;
  }

  /**
   * The index of the quote that closes the string being scanned, from `i` (inside it), or -1.
   * Jumps from quote to quote (Buffer#indexOf) and counts the backslashes before each.
   */
  private stringEnd(chunk: Buffer, i: number): number {
    const n = chunk.length;
    if (this.escaped) {
      this.escaped = false;
      i += 1;
    }
    for (;;) {
      if (i >= n) return -1;
      const q = chunk.indexOf(QUOTE, i);
      if (q < 0) {
        let run = 0;
        for (let k = n - 1; k >= i && chunk[k] === BACKSLASH; k -= 1) run += 1;
        this.escaped = run % 2 === 1;
        return -1;
      }
      let run = 0;
      for (let k = q - 1; k >= i && chunk[k] === BACKSLASH; k -= 1) run += 1;
      if (run % 2 === 0) return q;
      i = q + 1;
    }
  }

  private checkCaptureSize(upTo: number): void {
    const size = upTo - this.captureStart;
    if (this.role === Role.Element) {
      if (size > this.maxBytes) {
        throw new JsonStreamError(`an element of ${this.path()} starting at byte ${this.captureStart} is larger than ${this.maxBytes} bytes`, this.captureStart, 'bytes');
      }
    } else if (this.restBytes + size > this.maxBytes) {
      throw new JsonStreamError(`the document around ${this.path()} is larger than ${this.maxBytes} bytes (at byte ${upTo})`, upTo, 'bytes');
    }
  }

  private path(): string {
    return this.steps.map((s, i) => (s.kind === 'item' ? '[*]' : `${i === 0 ? '' : '.'}${s.kind === 'member' ? '*' : s.name}`)).join('');
  }

  /** The captured value ends at `end` of this chunk: parse it and put it where it belongs. */
  private finishCapture(chunk: Buffer, end: number): void {
    const size = this.offset + end - this.captureStart;
    this.checkCaptureSize(this.offset + end);
    if (this.role === Role.Element && this.onRaw !== undefined) return this.finishRawElement(chunk, end, size);
    const text = this.pieces.length === 0 ? chunk.toString('utf8', this.captureStart - this.offset, end) : Buffer.concat([...this.pieces, chunk.subarray(0, end)], size).toString('utf8');
    this.pieces = [];
    this.finishValue(this.parse(text), size);
  }

  /**
   * An element, with `onRaw`: its bytes are offered first, and parsed only if `onRaw` did not take
   * them. Counted before: an element taken raw is an element all the same.
   */
  private finishRawElement(chunk: Buffer, end: number, size: number): void {
    const bytes = this.pieces.length === 0 ? chunk.subarray(this.captureStart - this.offset, end) : Buffer.concat([...this.pieces, chunk.subarray(0, end)], size);
    this.pieces = [];
    this.countElement();
    const keys = this.wildcardLevels.map((l) => this.keysAt[l]!);
    this.mode = Mode.After;
    if (!this.onRaw!(bytes, keys)) this.onElement(this.parse(bytes.toString('utf8')), keys);
    if (this.frames.length === 0) this.mode = Mode.Done;
  }

  private countElement(): void {
    this.elements += 1;
    if (this.elements > this.maxElements) {
      throw new JsonStreamError(`more than ${this.maxElements} elements at ${this.path()} (at byte ${this.captureStart})`, this.captureStart, 'elements');
    }
    this.frames[this.frames.length - 1]!.count += 1;
  }

  private parse(text: string): unknown {
    try {
      return JSON.parse(text);
    } catch (e) {
      const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
      throw new JsonStreamError(`${e instanceof Error ? e.message : String(e)} in the value ${JSON.stringify(shown)} at byte ${this.captureStart}`, this.captureStart, 'syntax');
    }
  }

  /** Puts a parsed value where it belongs: a key, a value off the path, or an element handed over. */
  private finishValue(value: unknown, size: number): void {
    const role = this.role;
    this.mode = Mode.After;
    if (role === Role.Key) {
      this.restBytes += size;
      this.frames[this.frames.length - 1]!.key = value as string;
      this.mode = Mode.Colon;
      return;
    }
    if (role === Role.OffPath) {
      this.restBytes += size;
      this.attach(value);
    } else {
      this.countElement();
      this.onElement(value, this.wildcardLevels.map((l) => this.keysAt[l]!));
    }
    if (this.frames.length === 0) this.mode = Mode.Done;
  }
}

/** The index of the quote that closes the string whose contents start at `i` of `b`, or -1. */
function closingQuote(b: Buffer, i: number): number {
  for (;;) {
    const q = b.indexOf(QUOTE, i);
    if (q < 0) return -1;
    let run = 0;
    for (let k = q - 1; k >= i && b[k] === BACKSLASH; k -= 1) run += 1;
    if (run % 2 === 0) return q;
    i = q + 1;
  }
}

function skipSpace(b: Buffer, i: number): number {
  while (i < b.length && isSpace(b[i]!)) i += 1;
  return i;
}

/** The index just past the value that starts at `i` of `b` (a whole JSON value), or -1. */
function valueEnd(b: Buffer, i: number): number {
  const c = b[i];
  if (c === QUOTE) {
    const q = closingQuote(b, i + 1);
    return q < 0 ? -1 : q + 1;
  }
  if (c !== LBRACE && c !== LBRACKET) {
    while (i < b.length) {
      const d = b[i]!;
      if (d === COMMA || d === RBRACE || d === RBRACKET || isSpace(d)) break;
      i += 1;
    }
    return i;
  }
  let depth = 0;
  for (; i < b.length; i += 1) {
    const d = b[i]!;
    if (d === QUOTE) {
      const q = closingQuote(b, i + 1);
      if (q < 0) return -1;
      i = q;
    } else if (d === LBRACE || d === LBRACKET) depth += 1;
    else if (d === RBRACE || d === RBRACKET) {
      depth -= 1;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * Where the value of the member `field` of the object whose JSON text is `b` is: [start, end) of
 * its bytes, for the member JSON.parse keeps (the last of that name), or undefined when `b` is
 * not an object, has no such member, or cannot be read. A member of an object nested inside does
 * not count. `b` is expected to be JSON that parsed; anything else gives undefined, never a guess.
 *
 * Example: `memberSpan(Buffer.from('{"a":{"id":1},"id":"x"}'), 'id')` → [19, 22] (`"x"`).
 */
export function memberSpan(b: Buffer, field: string): [number, number] | undefined {
  const name = Buffer.from(field, 'utf8');
  let i = skipSpace(b, 0);
  if (b[i] !== LBRACE) return undefined;
  i = skipSpace(b, i + 1);
  if (b[i] === RBRACE) return undefined;
  let found: [number, number] | undefined;
  for (;;) {
    if (b[i] !== QUOTE) return undefined;
    const close = closingQuote(b, i + 1);
    if (close < 0) return undefined;
    // A name written with escapes is decoded to be compared; one without is compared as bytes.
    let escaped = false;
    for (let k = i + 1; k < close && !escaped; k += 1) escaped = b[k] === BACKSLASH;
    const same = escaped ? JSON.parse(b.toString('utf8', i, close + 1)) === field : close - i - 1 === name.length && b.compare(name, 0, name.length, i + 1, close) === 0;
    i = skipSpace(b, close + 1);
    if (b[i] !== COLON) return undefined;
    const start = skipSpace(b, i + 1);
    const end = valueEnd(b, start);
    if (end < 0 || end === start) return undefined;
    if (same) found = [start, end];
    i = skipSpace(b, end);
    if (b[i] === RBRACE) return found;
    if (b[i] !== COMMA) return undefined;
    i = skipSpace(b, i + 1);
  }
}
