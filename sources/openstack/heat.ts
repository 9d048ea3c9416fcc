import { HttpError, fetchAllPages } from '../../src/http.js';
import type { EntityDraft } from '../../src/model.js';
import { defineSource } from '../../src/source.js';
import { type OpenStackPollOptions, openstackSource, readOpenStackPollOptions, withSuffix } from './poller.js';
import { present } from './fields.js';

/**
 * `use: openstack.heat` — stacks from Heat's API:
 *
 * | entity       | request                                                       | id   | state          | parents |
 * | ------------ | ------------------------------------------------------------- | ---- | -------------- | ------- |
 * | `heat.stack` | GET /v1/{project}/stacks?global_tenant=true&show_nested=true  | `id` | `stack_status` | —       |
 *
 * {@link stackDraft} is the one definition of a heat.stack: the API record goes through
 * {@link apiStackFacts}, an `orchestration.stack.*` notification payload through its own reduction
 * to {@link StackFacts}.
 *
 * Nested stacks are listed too (`show_nested`): Heat sends notifications for them, so a poll that
 * left them out would delete what every notification creates. Their nesting is not part of the
 * entity: notifications do not carry it, and a field only one path knows would make every
 * notification and the next poll each send an update that undoes the other's.
 */
export interface StackFacts {
  id: string;
  name?: string | null | undefined;
  /** CREATE_COMPLETE, UPDATE_IN_PROGRESS, … (action_status). */
  status?: string | null | undefined;
  statusReason?: string | null | undefined;
  project?: string | null | undefined;
}

/** The fields of a Heat stack record (GET /v1/{project}/stacks) this source reads. */
export interface ApiStack {
  id: string;
  stack_name?: string | null;
  stack_status?: string | null;
  stack_status_reason?: string | null;
  /** Present when listed with global_tenant. */
  project?: string | null;
  links?: { href?: string | null; rel?: string | null }[] | null;
}

/** The project in a stack's self link (`…/v1/{project}/stacks/{name}/{id}`), for lists without `project`. */
function projectFromLinks(links: ApiStack['links']): string | undefined {
  for (const link of links ?? []) {
    const m = link.rel === 'self' && link.href ? /\/v1\/([^/]+)\/stacks\//.exec(link.href) : null;
    if (m) return m[1];
  }
  return undefined;
}

/** The facts of an API stack record. */
export function apiStackFacts(s: ApiStack): StackFacts {
  return {
    id: s.id,
    name: s.stack_name,
    status: s.stack_status,
    statusReason: s.stack_status_reason,
    project: present(s.project) ?? projectFromLinks(s.links),
  };
}

/** The heat.stack entity of a stack's facts. */
export function stackDraft(f: StackFacts): EntityDraft {
  const reason = present(f.statusReason);
  return {
    type: 'heat.stack',
    id: f.id,
    name: present(f.name),
    state: present(f.status),
    project: present(f.project),
    parents: [],
    attributes: reason ? { status_reason: reason } : {},
  };
}

export interface HeatOptions extends OpenStackPollOptions {
  /** List every project's stacks (`globalTenant`, default true; needs Heat's global_index policy). */
  globalTenant: boolean;
}

/** Heat answers pages of at most its max_limit without links: ask for this many and go on by marker. */
const HEAT_PAGE = 1000;

export default defineSource<HeatOptions, ApiStack>({
  options: (read) => ({ ...readOpenStackPollOptions(read), globalTenant: read.boolean('globalTenant', true) }),
  create: (options, context) => {
    let globalTenant = options.globalTenant;
    return openstackSource<ApiStack>(
      {
        serviceTypes: ['orchestration'],
        types: ['heat.stack'],
        endpoint: (url, token) => (token.projectId ? withSuffix(url, `/${token.projectId}`) : url),
        fetch: async ({ http, signal }) => {
          const list = (global: boolean): Promise<ApiStack[]> =>
            fetchAllPages<ApiStack>(http, '/stacks', { key: 'stacks', limit: HEAT_PAGE, params: global ? { global_tenant: true, show_nested: true } : { show_nested: true }, signal });
          if (!globalTenant) return list(false);
          try {
            return await list(true);
          } catch (e) {
            // Without the global_index policy, fall back to the token's own project (once, and say so).
            if (!(e instanceof HttpError) || e.status !== 403) throw e;
            context.log.warn('heat refused global_tenant (403): listing only the token project\'s stacks', { url: e.url });
            globalTenant = false;
            return list(false);
          }
        },
        map: (s) => stackDraft(apiStackFacts(s)),
      },
      options,
      context,
    );
  },
});
