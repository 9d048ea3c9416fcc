/**
 * What the parse worker remembers of a poll's elements so that the next poll sends only the ids
 * of those that did not change (src/kept.ts says why; src/parseWorker.ts uses it). Runs on the
 * worker: nothing here touches the synchronizer's state.
 *
 * An element is remembered as a 16-byte digest of its picked form: SHA-256 over a secret salt and
 * a serialization that tells every two JSON values apart. Tenants write server names and
 * metadata, so a digest must not be one they can make collide: with a cryptographic hash and a
 * salt they never see, two elements that differ never share one. The table is keyed by a 32-bit
 * hash of the element's id, but a match is decided by the digest alone, which covers the id too:
 * ids whose hashes collide, or an id twice in one poll with different elements, only ever make
 * an element be read in full, never kept wrongly.
 */
import { hash, randomBytes } from 'node:crypto';

/** Per worker: what makes the digests unpredictable to whoever writes the elements (32 random bytes as a string's prefix). */
const SALT = randomBytes(32).toString('latin1');
/** And the ids' hashes (only ever costs probes, never a wrong match). */
const SEED = randomBytes(4).readUInt32LE(0);

/** Words per slot: the id's hash, then the element's 16-byte digest. */
const WORDS = 5;
/** At most this full before the table grows (×1.5): 27 to 40 bytes per element. */
const LOAD = 0.75;

/**
 * A deterministic serialization of a JSON value that no other value shares. JSON.stringify's,
 * except for a value holding -0 or ±Infinity (JSON.parse makes them of `-0` and `1e400`), which it
 * would write as 0 and null: those go through {@link serialize}. Tagged, so the two never meet.
 * JSON.stringify is 2.4 times as fast as the walk in JS (2.7 against 6.5 µs per picked Nova
 * server, docs/scale.md), and the check for such numbers costs a tenth of it.
 */
export function textOf(value: unknown): string {
  return oddNumbers(value) ? `s${serialize(value)}` : `j${JSON.stringify(value)}`;
}

/** Whether `value` holds a number JSON.stringify does not write as itself (-0, ±Infinity, NaN). */
function oddNumbers(value: unknown): boolean {
  if (typeof value === 'number') return value === 0 ? Object.is(value, -0) : !Number.isFinite(value);
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) {
    for (const item of value) if (oddNumbers(item)) return true;
    return false;
  }
  for (const key of Object.keys(value)) if (oddNumbers((value as Record<string, unknown>)[key])) return true;
  return false;
}

/**
 * A deterministic serialization of a JSON value that no other value shares (JSON.stringify writes
 * -0 as 0 and ±Infinity as null): strings and keys as JSON, numbers as String() does (-0 apart),
 * other values by a letter. Object keys in their order: an element whose keys come in another
 * order is read in full, never kept wrongly.
 */
export function serialize(value: unknown): string {
  if (value === null) return 'n';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Object.is(value, -0) ? '-0' : String(value);
    case 'boolean':
      return value ? 't' : 'f';
    case 'object': {
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i += 1) out += (i === 0 ? '' : ',') + serialize(value[i]);
        return out + ']';
      }
      let out = '{';
      let first = true;
      for (const key of Object.keys(value)) {
        out += (first ? '' : ',') + JSON.stringify(key) + ':' + serialize((value as Record<string, unknown>)[key]);
        first = false;
      }
      return out + '}';
    }
    default:
      // Not a JSON value (JSON.parse makes none of these): a tag of its own, never matched by a JSON one.
      return `?${typeof value}`;
  }
}

/** The element's digest: the first 16 bytes of SHA-256(salt, serialization), as 4 words. */
export function digestOf(element: unknown): Uint32Array {
  // The one-shot hash: a third cheaper than createHash's object per element.
  const bytes = hash('sha256', SALT + textOf(element), 'buffer');
  const words = new Uint32Array(4);
  for (let i = 0; i < 4; i += 1) words[i] = bytes.readUInt32LE(i * 4);
  return words;
}

/** FNV-1a of the id's UTF-16 units, seeded; never 0 (an empty slot's mark). */
export function idHash(id: string): number {
  let h = (0x811c9dc5 ^ SEED) >>> 0;
  for (let i = 0; i < id.length; i += 1) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return h === 0 ? 1 : h;
}

/**
 * One poll's elements (of one source and path) by id: an open-addressed table of 20-byte slots in
 * one typed array, so that 100,000 elements cost 2.7–4 MB and no object per element.
 */
export class DigestTable {
  private slots: Uint32Array;
  private capacity: number;
  /** Slots used. */
  size = 0;

  constructor(expected = 1024) {
    this.capacity = Math.max(16, Math.ceil(expected / LOAD) + 1);
    this.slots = new Uint32Array(this.capacity * WORDS);
  }

  /** Bytes held: what the worker's memory grows by. */
  get bytes(): number {
    return this.slots.byteLength;
  }

  /**
   * Records the element of `hash` with `digest`. The same hash again with another digest (an id
   * twice in a poll, or two ids whose hashes collide) leaves a digest of zeros, which no element
   * matches: both are read in full.
   */
  add(hash: number, digest: Uint32Array): void {
    const at = this.find(hash);
    const s = this.slots;
    if (s[at] === hash) {
      if (s[at + 1] !== digest[0] || s[at + 2] !== digest[1] || s[at + 3] !== digest[2] || s[at + 4] !== digest[3]) s.fill(0, at + 1, at + WORDS);
      return;
    }
    s[at] = hash;
    s.set(digest, at + 1);
    this.size += 1;
    if (this.size > this.capacity * LOAD) this.grow();
  }

  /** Whether the element of `hash` was recorded with `digest` (and only with it). */
  has(hash: number, digest: Uint32Array): boolean {
    const at = this.find(hash);
    const s = this.slots;
    if (s[at] !== hash) return false;
    // Zeros: the id was recorded with two different elements (above); no digest is ever all zeros in practice.
    if ((s[at + 1]! | s[at + 2]! | s[at + 3]! | s[at + 4]!) === 0) return false;
    return s[at + 1] === digest[0] && s[at + 2] === digest[1] && s[at + 3] === digest[2] && s[at + 4] === digest[3];
  }

  /** The digest recorded for `hash`, when one element (and only one) was recorded with it. */
  digestFor(hash: number): Uint32Array | undefined {
    const at = this.find(hash);
    const s = this.slots;
    if (s[at] !== hash || (s[at + 1]! | s[at + 2]! | s[at + 3]! | s[at + 4]!) === 0) return undefined;
    return s.slice(at + 1, at + WORDS);
  }

  /** The slot of `hash`, or the empty one where it would go (linear probing). */
  private find(hash: number): number {
    const s = this.slots;
    let i = hash % this.capacity;
    for (;;) {
      const at = i * WORDS;
      if (s[at] === hash || s[at] === 0) return at;
      i = i + 1 === this.capacity ? 0 : i + 1;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.capacity = Math.ceil(this.capacity * 1.5);
    this.slots = new Uint32Array(this.capacity * WORDS);
    for (let at = 0; at < old.length; at += WORDS) {
      if (old[at] === 0) continue;
      const to = this.find(old[at]!);
      this.slots.set(old.subarray(at, at + WORDS), to);
    }
  }
}

/**
 * The tables of every family (a source's request path), by poll generation. A family keeps the
 * generation being recorded, the one the latest stream compares with, and the newest before the
 * one recorded (the hub names it as the base once it applied that poll): older ones are of no use
 * (the hub never names a base older than its last applied snapshot).
 */
export class KeptMemory {
  private readonly families = new Map<string, Map<number, Generation>>();

  /**
   * A stream of `family` opens: the tables it records into (shared by every stream of the
   * generation: a poll's pages), and the base's, if this worker holds it.
   */
  open(family: string, generation: number, base: number | undefined): { record: DigestTable; base: DigestTable | undefined; recordRaw: RawMemo; baseRaw: RawMemo | undefined } {
    let tables = this.families.get(family);
    if (tables === undefined) {
      tables = new Map();
      this.families.set(family, tables);
    }
    // Kept: the generation being recorded, the base, and the newest before the one recorded. A
    // poll's next attempt may open its first page before the hub applied that poll (its base is
    // then the one before), and its later pages name that poll as their base once it is applied:
    // dropped at the first page, it was read in full for every page after.
    let previous = -Infinity;
    for (const g of tables.keys()) if (g < generation && g > previous) previous = g;
    for (const g of tables.keys()) if (g !== generation && g !== base && g !== previous) tables.delete(g);
    const compared = base === undefined ? undefined : tables.get(base);
    let record = tables.get(generation);
    if (record === undefined) {
      record = { digests: new DigestTable(compared?.digests.size), raw: new RawMemo(compared?.raw.size) };
      tables.set(generation, record);
    }
    return { record: record.digests, base: compared?.digests, recordRaw: record.raw, baseRaw: compared?.raw };
  }

  /** Bytes held by every table: for tests and the memory figures. */
  bytes(): number {
    let sum = 0;
    for (const tables of this.families.values()) for (const t of tables.values()) sum += t.digests.bytes + t.raw.bytes;
    return sum;
  }

  /** Generations held per family: for tests of what is dropped. */
  generations(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [family, tables] of this.families) out[family] = [...tables.keys()].sort((a, b) => a - b);
    return out;
  }
}

/** A generation of a family: its elements' digests by id, and where their ids are in their bytes. */
interface Generation {
  digests: DigestTable;
  raw: RawMemo;
}

/**
 * A stream's salt for the digests of elements' bytes: the worker's secret, and what decides what
 * the bytes become (the pick's shape, the id's field), so that bytes read under another shape
 * never meet.
 */
export function rawSalt(shape: unknown, field: string): Buffer {
  return Buffer.concat([Buffer.from(SALT, 'latin1'), Buffer.from(`${JSON.stringify(shape ?? null)}\u0000${field}\u0000`, 'utf8')]);
}

/** The first 12 bytes of SHA-256(salt, bytes), as 3 words; the first never 0 (an empty slot's mark). */
export function rawDigestOf(salt: Buffer, bytes: Buffer): Uint32Array {
  // The one-shot hash of a copy: createHash's two updates are quicker in a loop (2.9 against 4.4 µs
  // for 1.7 KB), but its object per element cost the worker more (9.5 against 8.6 µs per element
  // in the `parse` benchmark, two pairs).
  const d = hash('sha256', Buffer.concat([salt, bytes], salt.length + bytes.length), 'buffer');
  const words = new Uint32Array(3);
  for (let i = 0; i < 3; i += 1) words[i] = d.readUInt32LE(i * 4);
  if (words[0] === 0) words[0] = 1;
  return words;
}

/** Words per slot: the bytes' 12-byte digest, then where the id's value starts and ends in them. */
const RAW_WORDS = 5;

/**
 * One poll's elements by the digest of their bytes (the salted SHA-256 of {@link rawDigestOf}):
 * where each one's id is in its bytes. An element whose bytes are those of an element of the
 * base poll is that element: its id is read at the same place, its digest is the base's for that
 * id, and it need not be parsed (src/parseWorker.ts). 20-byte slots in one typed array: 100,000
 * elements cost 2.7–4 MB.
 */
export class RawMemo {
  private slots: Uint32Array;
  private capacity: number;
  size = 0;

  constructor(expected = 1024) {
    this.capacity = Math.max(16, Math.ceil(expected / LOAD) + 1);
    this.slots = new Uint32Array(this.capacity * RAW_WORDS);
  }

  get bytes(): number {
    return this.slots.byteLength;
  }

  /** Records that bytes of `digest` hold their id at [start, end). */
  add(digest: Uint32Array, start: number, end: number): void {
    const at = this.find(digest);
    const s = this.slots;
    if (s[at] === 0) {
      this.size += 1;
      s.set(digest, at);
    }
    s[at + 3] = start;
    s[at + 4] = end;
    if (this.size > this.capacity * LOAD) this.grow();
  }

  /** Where the id is in bytes of `digest`, if such bytes were recorded. */
  span(digest: Uint32Array): [number, number] | undefined {
    const at = this.find(digest);
    const s = this.slots;
    return s[at] === 0 ? undefined : [s[at + 3]!, s[at + 4]!];
  }

  /** The slot of `digest`, or the empty one where it would go (linear probing on the whole digest). */
  private find(digest: Uint32Array): number {
    const s = this.slots;
    let i = digest[0]! % this.capacity;
    for (;;) {
      const at = i * RAW_WORDS;
      if (s[at] === 0 || (s[at] === digest[0] && s[at + 1] === digest[1] && s[at + 2] === digest[2])) return at;
      i = i + 1 === this.capacity ? 0 : i + 1;
    }
  }

  private grow(): void {
    const old = this.slots;
    this.capacity = Math.ceil(this.capacity * 1.5);
    this.slots = new Uint32Array(this.capacity * RAW_WORDS);
    for (let at = 0; at < old.length; at += RAW_WORDS) {
      if (old[at] === 0) continue;
      this.slots.set(old.subarray(at, at + RAW_WORDS), this.find(old.subarray(at, at + 3)));
    }
  }
}
