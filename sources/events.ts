import { type EntityDraft, type EntityRef, entityKey } from '../src/model.js';
import { type PushOptions, PushRefusal, pushReceiver$, readPushOptions } from '../src/push.js';
import { defineSource } from '../src/source.js';
import { isObject } from './alertmanager.js';

/**
 * `use: events` — a generic push endpoint for anything that knows of a change (what Vitrage's
 * Doctor and custom-event datasources did): POST a JSON list of events (or one event, or NDJSON,
 * one per line) with the bearer token.
 *
 * | event field                      | entity                                                   |
 * |----------------------------------|----------------------------------------------------------|
 * | `type`, `id` (required)          | the entity's type and id                                 |
 * | `state` (required for upsert)    | state (upper-cased)                                      |
 * | `name?`, `project?`              | name, project                                            |
 * | `parents?: [{type, id}]`         | parents                                                  |
 * | `attributes?: {…}`               | attributes                                               |
 * | `action?: upsert \| delete`      | upsert (default) or delete of `type:id`                  |
 *
 * The whole post is checked before anything is applied; an error names the event and the field
 * (`[2].state: expected a non-empty string`). The answer lists what was applied.
 */
export interface EventsOptions extends PushOptions {
  /** Entity types a post may name (exact); empty: any. */
  types: string[];
}

/** One checked event. */
export interface PushedEvent {
  action: 'upsert' | 'delete';
  draft: EntityDraft;
}

const FIELDS = new Set(['type', 'id', 'state', 'name', 'project', 'parents', 'attributes', 'action']);

function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}

/** The events of one document (a list, or one event), checked against `types` (empty: any). */
export function parseEvents(doc: unknown, where = '', types: readonly string[] = []): PushedEvent[] {
  const list = Array.isArray(doc) ? doc : [doc];
  return list.map((e: unknown, i): PushedEvent => {
    const index = Array.isArray(doc) ? `[${i}]` : '';
    const fail = (field: string, problem: string): never => {
      throw new PushRefusal(`${where ? `${where}: ` : ''}${index}${index && field ? '.' : ''}${field}`, problem);
    };
    if (!isObject(e)) return fail('', `expected an event object {type, id, state, …}, got ${JSON.stringify(e)?.slice(0, 80)}`);
    for (const k of Object.keys(e)) if (!FIELDS.has(k)) fail(k, `is not an event field (use ${[...FIELDS].join(', ')})`);
    const { type, id, state, name, project, parents, attributes } = e;
    const action = e.action ?? 'upsert';
    if (action !== 'upsert' && action !== 'delete') fail('action', `expected upsert or delete, got ${JSON.stringify(action)}`);
    if (!nonEmpty(type)) return fail('type', `expected a non-empty string, got ${JSON.stringify(type)}`);
    if (types.length > 0 && !types.includes(type)) fail('type', `${JSON.stringify(type)} is not one of the types this endpoint takes (${types.join(', ')})`);
    if (!nonEmpty(id)) return fail('id', `expected a non-empty string, got ${JSON.stringify(id)}`);
    if (action === 'upsert' && !nonEmpty(state)) fail('state', `expected a non-empty string, got ${JSON.stringify(state)}`);
    if (action === 'delete' && state !== undefined && !nonEmpty(state)) fail('state', `expected a non-empty string, got ${JSON.stringify(state)}`);
    if (name !== undefined && typeof name !== 'string') fail('name', `expected a string, got ${JSON.stringify(name)}`);
    if (project !== undefined && typeof project !== 'string') fail('project', `expected a string, got ${JSON.stringify(project)}`);
    if (attributes !== undefined && !isObject(attributes)) fail('attributes', 'expected a mapping');
    let refs: EntityRef[] | undefined;
    if (parents !== undefined) {
      if (!Array.isArray(parents)) return fail('parents', 'expected a list of {type, id}');
      refs = parents.map((p: unknown, j) => {
        if (!isObject(p) || !nonEmpty(p.type) || !nonEmpty(p.id)) return fail(`parents[${j}]`, `expected {type, id} with non-empty strings, got ${JSON.stringify(p)}`);
        return { type: p.type, id: p.id };
      });
    }
    return {
      action: action as PushedEvent['action'],
      draft: {
        type,
        id,
        ...(nonEmpty(state) ? { state } : {}),
        ...(typeof name === 'string' ? { name } : {}),
        ...(typeof project === 'string' ? { project } : {}),
        ...(refs ? { parents: refs } : {}),
        ...(attributes !== undefined ? { attributes: attributes as Record<string, unknown> } : {}),
      },
    };
  });
}

export default defineSource({
  options: (read): EventsOptions => {
    const push = readPushOptions(read, '/events');
    if (push.auth.kind === 'none') read.fail('token', 'is required: the events endpoint takes a bearer token (token or tokenEnv), or basic auth (username, password)');
    return { ...push, types: read.stringList('types', []) };
  },

  create(options, { name, log, scheduler }) {
    return {
      name,
      types: options.types,
      signal$: pushReceiver$<PushedEvent>(options, { name, log, scheduler }, (doc, where) =>
        parseEvents(doc, where, options.types).map((e) => ({ action: e.action, record: e, key: entityKey(e.draft.type, e.draft.id) })),
      ),
      map: (e: PushedEvent) => e.draft,
    };
  },
});
