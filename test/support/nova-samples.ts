/**
 * Nova's versioned notification samples (../shared/fixtures/openstack/nova/doc/notification_samples)
 * with their `$ref`s resolved as Nova's own tests do (SOURCES.md there): the path is relative to
 * the file holding the `$ref`, and sibling keys are overrides deep-merged into the resolved
 * object (mappings merged recursively, lists and scalars replaced).
 */
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { FIXTURES } from './fixtures.js';

export { FIXTURES };
export const NOVA_SAMPLES = join(FIXTURES, 'openstack/nova/doc/notification_samples');

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isMapping(v: Json): v is { [key: string]: Json } {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Json, override: Json): Json {
  if (!isMapping(base) || !isMapping(override)) return override;
  const out: { [key: string]: Json } = { ...base };
  for (const [k, v] of Object.entries(override)) out[k] = k in out ? deepMerge(out[k]!, v) : v;
  return out;
}

function resolveRefs(value: Json, dir: string): Json {
  if (Array.isArray(value)) return value.map((v) => resolveRefs(v, dir));
  if (!isMapping(value)) return value;
  const { $ref, ...siblings } = value;
  const resolvedSiblings: { [key: string]: Json } = {};
  for (const [k, v] of Object.entries(siblings)) resolvedSiblings[k] = resolveRefs(v, dir);
  if (typeof $ref !== 'string') return resolvedSiblings;
  const file = resolve(dir, $ref.replace(/#$/, ''));
  const target = resolveRefs(JSON.parse(readFileSync(file, 'utf8')) as Json, dirname(file));
  return deepMerge(target, resolvedSiblings);
}

/** One sample, `$ref`-free: `{event_type, payload, priority, publisher_id}`. */
export function novaSample(file: string): { event_type: string; payload: Record<string, unknown>; priority: string; publisher_id: string } {
  const path = join(NOVA_SAMPLES, file);
  return resolveRefs(JSON.parse(readFileSync(path, 'utf8')) as Json, dirname(path)) as never;
}

/** File names of every top-level sample. */
export function novaSampleFiles(): string[] {
  return readdirSync(NOVA_SAMPLES).filter((f) => f.endsWith('.json')).sort();
}

/**
 * The AMQP body oslo.messaging's messagingv2 driver makes of a sample: the inner message
 * (message_id, publisher_id, event_type, priority, payload, timestamp, _unique_id) JSON-encoded
 * as the string `oslo.message` of the 2.0 envelope.
 */
export function osloBody(sample: { event_type: string; payload: unknown; priority?: string; publisher_id?: string }, extra: { messageId: string; timestamp: string }): Buffer {
  const inner = {
    message_id: extra.messageId,
    publisher_id: sample.publisher_id ?? 'nova-compute:compute',
    event_type: sample.event_type,
    priority: sample.priority ?? 'INFO',
    payload: sample.payload,
    timestamp: extra.timestamp,
    _unique_id: extra.messageId.replace(/-/g, ''),
  };
  return Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(inner) }));
}

/** oslo's timestamp form: naive UTC, a space, microseconds. */
export function osloTimestamp(date: Date): string {
  return date.toISOString().replace('T', ' ').replace('Z', '000');
}

