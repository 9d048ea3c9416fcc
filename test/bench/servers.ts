// Temporary: the Nova source's own mapping replaces this once sources/openstack/nova.ts lands.
import { instanceDraft } from '../../sources/openstack/instance.js';
import type { EntityDraft } from '../../src/model.js';

export type Server = Record<string, unknown> & { id: string };

export function serverDraft(s: Server): EntityDraft {
  const str = (k: string): string | undefined => (typeof s[k] === 'string' ? (s[k] as string) : undefined);
  return instanceDraft({
    id: s.id,
    name: str('name'),
    status: str('status'),
    vmState: str('OS-EXT-STS:vm_state'),
    taskState: str('OS-EXT-STS:task_state'),
    project: str('tenant_id'),
    host: str('OS-EXT-SRV-ATTR:host'),
    availabilityZone: str('OS-EXT-AZ:availability_zone'),
    flavor: (s.flavor as { original_name?: string } | undefined)?.original_name,
    image: (s.image as { id?: string } | undefined)?.id,
    user: str('user_id'),
  });
}
