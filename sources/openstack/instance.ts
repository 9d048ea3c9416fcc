import { type EntityDraft, ref } from '../../src/model.js';
import { present } from './fields.js';

/**
 * The one definition of a `nova.instance` entity. The Nova poll source (GET /servers/detail) and
 * the notification source (compute.instance.* / instance.*) both reduce their records to these
 * facts and call {@link instanceDraft}, so a poll and a notification that describe the same
 * server give the same entity and the same hash (no spurious update after every poll).
 *
 * Only facts that both paths carry are kept: the API's `status` is derived from vm_state and
 * task_state ({@link novaStatus}), flavor is the flavor's name (API microversion ≥ 2.47 embeds it).
 */
export interface InstanceFacts {
  id: string;
  name?: string | null | undefined;
  /** The API status (ACTIVE, SHUTOFF, REBOOT, …); derived with novaStatus when absent. */
  status?: string | null | undefined;
  vmState?: string | null | undefined;
  taskState?: string | null | undefined;
  project?: string | null | undefined;
  /** The compute service host (OS-EXT-SRV-ATTR:host; `host` in notifications). */
  host?: string | null | undefined;
  availabilityZone?: string | null | undefined;
  flavor?: string | null | undefined;
  image?: string | null | undefined;
  user?: string | null | undefined;
}

const REBOOT = ['rebooting', 'reboot_pending', 'reboot_started'];
const HARD_REBOOT = ['rebooting_hard', 'reboot_pending_hard', 'reboot_started_hard'];
const REBUILD = ['rebuilding', 'rebuild_block_device_mapping', 'rebuild_spawning'];
const RESIZE = ['resize_prep', 'resize_migrating', 'resize_migrated', 'resize_finish'];

function tasks(status: string, taskStates: readonly string[]): Record<string, string> {
  return Object.fromEntries(taskStates.map((t) => [t, status]));
}

/** Nova's own vm_state × task_state → API status table (nova/api/openstack/common.py). */
const STATE_MAP: Record<string, Record<string, string> & { default: string }> = {
  active: {
    default: 'ACTIVE',
    ...tasks('REBOOT', REBOOT),
    ...tasks('HARD_REBOOT', HARD_REBOOT),
    updating_password: 'PASSWORD',
    ...tasks('REBUILD', REBUILD),
    migrating: 'MIGRATING',
    ...tasks('RESIZE', RESIZE),
  },
  building: { default: 'BUILD' },
  stopped: { default: 'SHUTOFF', ...tasks('RESIZE', RESIZE), ...tasks('REBUILD', REBUILD) },
  resized: { default: 'VERIFY_RESIZE', resize_reverting: 'REVERT_RESIZE' },
  paused: { default: 'PAUSED', migrating: 'MIGRATING' },
  suspended: { default: 'SUSPENDED' },
  rescued: { default: 'RESCUE' },
  error: { default: 'ERROR', ...tasks('REBUILD', REBUILD) },
  deleted: { default: 'DELETED' },
  'soft-delete': { default: 'SOFT_DELETED' },
  shelved: { default: 'SHELVED' },
  shelved_offloaded: { default: 'SHELVED_OFFLOADED' },
};

/** The status Nova's API shows for a vm_state and task_state (UNKNOWN for a vm_state Nova doesn't know). */
export function novaStatus(vmState: string, taskState?: string | null): string {
  const byTask = STATE_MAP[vmState.toLowerCase()];
  if (!byTask) return 'UNKNOWN';
  return (taskState ? byTask[taskState.toLowerCase()] : undefined) ?? byTask.default;
}

/** The nova.instance entity for a server's facts. */
export function instanceDraft(f: InstanceFacts): EntityDraft {
  const host = present(f.host);
  const vmState = present(f.vmState);
  const status = present(f.status) ?? (vmState ? novaStatus(vmState, f.taskState) : undefined);
  // Sorted key order: normalizeEntity then keeps the object as it is (no canonical copy).
  const attributes: Record<string, string> = {};
  const zone = present(f.availabilityZone);
  if (zone !== undefined) attributes.availability_zone = zone;
  const flavor = present(f.flavor);
  if (flavor !== undefined) attributes.flavor = flavor;
  if (host !== undefined) attributes.host = host;
  const image = present(f.image);
  if (image !== undefined) attributes.image = image;
  const task = present(f.taskState);
  if (task !== undefined) attributes.task_state = task;
  const user = present(f.user);
  if (user !== undefined) attributes.user = user;
  if (vmState !== undefined) attributes.vm_state = vmState;
  return {
    type: 'nova.instance',
    id: f.id,
    name: present(f.name),
    state: status,
    project: present(f.project),
    parents: host ? [ref('nova.host', host)] : [],
    attributes,
  };
}
