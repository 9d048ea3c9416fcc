import { hash as digest } from 'node:crypto';
import type { Entity, EntityRef } from './model.js';

/**
 * Canonical JSON: like JSON.stringify, but object keys are sorted, so two values with the same
 * meaning give the same text whatever their key order (object-hash's semantics, minus its cost).
 * `undefined` members are left out, as JSON does; arrays keep their order.
 */
export function canonicalJson(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'number':
      return Number.isFinite(value) ? String(value) : 'null';
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          // An undefined item is written `null`, as JSON does (the default case below).
          out += canonicalJson(value[i]);
        }
        return out + ']';
      }
      if (value instanceof Date) return JSON.stringify(value.toISOString());
      const record = value as Record<string, unknown>;
      const keys = Object.keys(record).sort();
      let out = '{';
      let first = true;
      for (const k of keys) {
        const v = record[k];
        if (v === undefined || typeof v === 'function') continue;
        out += (first ? '' : ',') + JSON.stringify(k) + ':' + canonicalJson(v);
        first = false;
      }
      return out + '}';
    }
    default:
      return 'null';
  }
}

/** True when every object inside `value` already has its keys in sorted order. */
function isCanonical(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return true;
  if (Array.isArray(value)) {
    for (const item of value) if (!isCanonical(item)) return false;
    return true;
  }
  // A Date has no enumerable keys: canonical, as the loop finds.
  let previous = '';
  for (const key in value) {
    if (key < previous) return false;
    previous = key;
    if (!isCanonical((value as Record<string, unknown>)[key])) return false;
  }
  return true;
}

/**
 * The same value with every object's keys in sorted order (the value itself when it already is),
 * so JSON.stringify of it is canonical. normalizeEntity stores attributes in this form, which
 * lets the hash be one native JSON.stringify call.
 */
export function canonicalize<T>(value: T): T {
  return isCanonical(value) ? value : (JSON.parse(canonicalJson(value)) as T);
}

/**
 * Where an entity's meaning is written, token by token: as text (entityMeaning: tests, debugging)
 * or as bytes for the hash (entityHash, the hot path: no intermediate strings).
 */
interface MeaningSink {
  /** One string, self-delimiting (its length goes first); `undefined` is written as absent. */
  str(s: string | undefined): void;
  /** One structural mark: `r` refs, `a` attributes, `s`/`n`/`T`/`F`/`z`/`j` value kinds. */
  mark(c: number): void;
}

const R = 0x72; // r
const A = 0x61; // a
const S = 0x73; // s
const N = 0x6e; // n
const T = 0x54; // T
const F = 0x46; // F
const Z = 0x7a; // z
const J = 0x6a; // j
const SCOPE = 0x40; // @

function writeRefs(refs: readonly EntityRef[], sink: MeaningSink): void {
  sink.mark(R);
  sink.str(String(refs.length));
  for (let i = 0; i < refs.length; i++) {
    sink.str(refs[i]!.type);
    sink.str(refs[i]!.id);
  }
}

function writeValue(v: unknown, sink: MeaningSink): void {
  switch (typeof v) {
    case 'string':
      sink.mark(S);
      return sink.str(v);
    case 'number':
      if (!Number.isFinite(v)) return sink.mark(Z);
      sink.mark(N);
      return sink.str(String(v));
    case 'boolean':
      return sink.mark(v ? T : F);
    default:
      if (v === null) return sink.mark(Z);
      sink.mark(J);
      return sink.str(canonicalJson(v));
  }
}

/**
 * Writes an entity's meaning (type, id, name, state, project, parents, children, attributes, and
 * its scope when it has one), not observedAt, source or raw (DESIGN rule 1). Every token is
 * self-delimiting, so different meanings write different token streams. Expects what
 * normalizeEntity makes: refs in canonical order, attributes canonicalized (sorted keys).
 */
function writeMeaning(e: Entity, sink: MeaningSink): void {
  sink.str(e.type);
  sink.str(e.id);
  sink.str(e.name);
  sink.str(e.state);
  sink.str(e.project);
  writeRefs(e.parents, sink);
  writeRefs(e.children, sink);
  sink.mark(A);
  const attrs = e.attributes;
  for (const key in attrs) {
    const v = attrs[key];
    if (v === undefined || typeof v === 'function') continue;
    sink.str(key);
    writeValue(v, sink);
  }
  // Last and only when set: an unscoped entity's hash is what it always was.
  if (e.scope !== undefined) {
    sink.mark(SCOPE);
    sink.str(e.scope);
  }
}

class TextSink implements MeaningSink {
  text = '';
  str(s: string | undefined): void {
    this.text += s === undefined ? '~' : s.length + ':' + s;
  }
  mark(c: number): void {
    this.text += String.fromCharCode(c);
  }
}

/**
 * Writes the tokens as bytes into one reused buffer: a string is 0x01, its length in UTF-16
 * units (4 bytes), then each unit — one byte below 0x80, else 0xFF and two bytes — so the encoding
 * stays injective; marks are single ASCII bytes; absent is `~`.
 */
class ByteSink implements MeaningSink {
  buf = Buffer.allocUnsafe(8192);
  off = 0;
  private room(n: number): void {
    // Stryker disable next-line EqualityOperator: growing when the token would fit exactly only allocates sooner
    if (this.off + n <= this.buf.length) return;
    // Stryker disable next-line ArithmeticOperator: the new size is at least off + n either way; only how far ahead it grows differs
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(bigger, 0, 0, this.off);
    this.buf = bigger;
  }
  str(s: string | undefined): void {
    if (s === undefined) return this.mark(0x7e);
    const n = s.length;
    this.room(5 + 3 * n);
    const buf = this.buf;
    let off = this.off;
    buf[off++] = 0x01;
    buf[off++] = n >>> 24;
    buf[off++] = (n >>> 16) & 0xff;
    buf[off++] = (n >>> 8) & 0xff;
    buf[off++] = n & 0xff;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c < 0x80) buf[off++] = c;
      else {
        buf[off++] = 0xff;
        buf[off++] = c >>> 8;
        buf[off++] = c & 0xff;
      }
    }
    this.off = off;
  }
  mark(c: number): void {
    this.room(1);
    this.buf[this.off++] = c;
  }
}

const bytes = new ByteSink();

/** The text of an entity's meaning: the tokens entityHash hashes, written out (tests, debugging). */
export function entityMeaning(e: Entity): string {
  const sink = new TextSink();
  writeMeaning(e, sink);
  return sink.text;
}

/**
 * Semantic hash of an entity (base64 SHA-1 of its meaning's tokens): equal meaning ⇒ equal hash,
 * whatever the key order of its attributes or the order of its refs — object-hash's semantics
 * at a fraction of its cost (the tokens go to one reused buffer, no intermediate strings).
 */
export function entityHash(e: Entity): string {
  bytes.off = 0;
  writeMeaning(e, bytes);
  return digest('sha1', bytes.buf.subarray(0, bytes.off), 'base64');
}

function sameRefs(a: readonly EntityRef[], b: readonly EntityRef[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i]!.type !== b[i]!.type || a[i]!.id !== b[i]!.id) return false;
  return true;
}

/** Deep equality of JSON-like values as JSON sees them (undefined members don't count). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return typeof a === 'number' && typeof b === 'number' ? !Number.isFinite(a) && !Number.isFinite(b) : false;
  }
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameJson(a[i] ?? null, b[i] ?? null)) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  if (a instanceof Date || b instanceof Date) return canonicalJson(a) === canonicalJson(b);
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  let count = 0;
  for (const key in ra) {
    if (ra[key] === undefined) continue;
    count++;
    if (!sameJson(ra[key], rb[key])) return false;
  }
  for (const key in rb) if (rb[key] !== undefined) count--;
  return count === 0;
}

// Scratch space of sameAttributes (one comparison at a time; sameJson does not use it).
const keysOfA: string[] = [];
const valuesOfA: unknown[] = [];

/**
 * sameJson for two attribute objects, fast when both list their keys in the same order (they do
 * once normalizeEntity has canonicalized them): one pass over each, no keyed lookup into the other.
 */
function sameAttributes(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): boolean {
  if (a === b) return true;
  let n = 0;
  for (const key in a) {
    const v = a[key];
    if (v === undefined) continue;
    keysOfA[n] = key;
    valuesOfA[n++] = v;
  }
  let i = 0;
  let same = true;
  // An undefined member of b needs no case of its own: under another name than a's at its place
  // it goes to the general comparison, and under the same name it differs from a's defined value.
  for (const key in b) {
    const v = b[key];
    // Another order (or another key): the general comparison decides.
    if (i === n || keysOfA[i] !== key) {
      same = sameJson(a, b);
      i = n;
      break;
    }
    if (!sameJson(valuesOfA[i], v)) {
      same = false;
      i = n;
      break;
    }
    i++;
  }
  // Hold no value past the comparison.
  valuesOfA.fill(undefined, 0, n);
  return same && i === n;
}

/**
 * Whether two entities have the same meaning, i.e. the same entityHash — without building the
 * hash text. The baseline uses it to confirm unchanged entities cheaply.
 */
export function sameMeaning(a: Entity, b: Entity): boolean {
  return (
    a.type === b.type &&
    a.id === b.id &&
    a.scope === b.scope &&
    a.name === b.name &&
    a.state === b.state &&
    a.project === b.project &&
    sameRefs(a.parents, b.parents) &&
    sameRefs(a.children, b.children) &&
    sameAttributes(a.attributes, b.attributes)
  );
}


/**
 * The entity fields whose value differs between two versions of one entity; attributes are
 * reported one by one as `attributes.<name>`.
 */
export function changedFields(before: Entity, after: Entity): string[] {
  const changed: string[] = [];
  if (before.scope !== after.scope) changed.push('scope');
  if (before.name !== after.name) changed.push('name');
  if (before.state !== after.state) changed.push('state');
  if (before.project !== after.project) changed.push('project');
  if (!sameRefs(before.parents, after.parents)) changed.push('parents');
  if (!sameRefs(before.children, after.children)) changed.push('children');
  const a = before.attributes;
  const b = after.attributes;
  const names: string[] = [];
  for (const name in a) if (!sameJson(a[name] ?? null, b[name] ?? null) || (a[name] === undefined) !== (b[name] === undefined)) names.push(name);
  for (const name in b) if (!(name in a) && b[name] !== undefined) names.push(name);
  for (const name of names.sort()) changed.push(`attributes.${name}`);
  return changed;
}
