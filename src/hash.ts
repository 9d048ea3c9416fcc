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

function refsJson(refs: readonly EntityRef[]): string {
  let out = '[';
  for (let i = 0; i < refs.length; i++) {
    const r = refs[i]!;
    out += (i > 0 ? ',' : '') + JSON.stringify(r.type) + ',' + JSON.stringify(r.id);
  }
  return out + ']';
}

/**
 * The text an entity's hash is taken over: its meaning (type, id, name, state, project, parents,
 * children, attributes), not observedAt, source or raw (DESIGN rule 1). Refs are expected in
 * canonical order (normalizeEntity sorts them).
 */
export function entityMeaning(e: Entity): string {
  return (
    JSON.stringify(e.type) +
    JSON.stringify(e.id) +
    (e.name === undefined ? '-' : JSON.stringify(e.name)) +
    JSON.stringify(e.state) +
    (e.project === undefined ? '-' : JSON.stringify(e.project)) +
    refsJson(e.parents) +
    refsJson(e.children) +
    canonicalJson(e.attributes)
  );
}

/** Semantic hash of an entity: equal meaning ⇒ equal hash (base64 SHA-1 of entityMeaning). */
export function entityHash(e: Entity): string {
  return digest('sha1', entityMeaning(e), 'base64');
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
  if (refsJson(before.parents) !== refsJson(after.parents)) changed.push('parents');
  if (refsJson(before.children) !== refsJson(after.children)) changed.push('children');
  const names = new Set([...Object.keys(before.attributes), ...Object.keys(after.attributes)]);
  for (const name of [...names].sort()) {
    if (canonicalJson(before.attributes[name]) !== canonicalJson(after.attributes[name])) {
      changed.push(`attributes.${name}`);
    }
  }
  return changed;
}
