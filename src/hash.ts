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
      return value ? 'true' : 'false';
    case 'bigint':
      return String(value);
    case 'object': {
      if (value === null) return 'null';
      if (Array.isArray(value)) {
        let out = '[';
        for (let i = 0; i < value.length; i++) {
          if (i > 0) out += ',';
          const item: unknown = value[i];
          out += item === undefined ? 'null' : canonicalJson(item);
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
  if (value instanceof Date) return true;
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

/** A string, self-delimiting: `<length>:<text>` (`~` for none). */
function field(s: string | undefined): string {
  return s === undefined ? '~' : s.length + ':' + s;
}

function refsText(refs: readonly EntityRef[]): string {
  let out = 'r' + refs.length;
  for (let i = 0; i < refs.length; i++) out += field(refs[i]!.type) + field(refs[i]!.id);
  return out;
}

function valueText(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return 's' + field(v);
    case 'number':
      return Number.isFinite(v) ? 'n' + v + ';' : 'z';
    case 'boolean':
      return v ? 'T' : 'F';
    default:
      return v === null ? 'z' : 'j' + field(canonicalJson(v));
  }
}

/**
 * The text an entity's hash is taken over: its meaning (type, id, name, state, project, parents,
 * children, attributes), not observedAt, source or raw (DESIGN rule 1). Every part is
 * self-delimiting, so different meanings give different texts; it is built by concatenation,
 * about three times faster than JSON.stringify of the same parts. Expects what normalizeEntity
 * makes: refs in canonical order, attributes canonicalized (sorted keys).
 */
export function entityMeaning(e: Entity): string {
  let attributes = 'a';
  const attrs = e.attributes;
  for (const key in attrs) {
    const v = attrs[key];
    if (v !== undefined && typeof v !== 'function') attributes += field(key) + valueText(v);
  }
  return field(e.type) + field(e.id) + field(e.name) + field(e.state) + field(e.project) + refsText(e.parents) + refsText(e.children) + attributes;
}

/** Semantic hash of an entity: equal meaning ⇒ equal hash (base64 SHA-1 of entityMeaning). */
export function entityHash(e: Entity): string {
  return digest('sha1', entityMeaning(e), 'base64');
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

/**
 * Whether two entities have the same meaning, i.e. the same entityHash — without building the
 * hash text. The baseline uses it to confirm unchanged entities cheaply.
 */
export function sameMeaning(a: Entity, b: Entity): boolean {
  return (
    a.type === b.type &&
    a.id === b.id &&
    a.name === b.name &&
    a.state === b.state &&
    a.project === b.project &&
    sameRefs(a.parents, b.parents) &&
    sameRefs(a.children, b.children) &&
    sameJson(a.attributes, b.attributes)
  );
}


/**
 * The entity fields whose value differs between two versions of one entity; attributes are
 * reported one by one as `attributes.<name>`.
 */
export function changedFields(before: Entity, after: Entity): string[] {
  const changed: string[] = [];
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
