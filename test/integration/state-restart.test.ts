import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { EntityEvent } from '../../src/model.js';
import { CliRun } from '../support/cli.js';
import { type OpenStackServer, serverId, startOpenStackServer } from '../support/openstack-server.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

const run = new CliRun();
let os: OpenStackServer | undefined;
afterEach(async () => {
  run.cleanup();
  await os?.close();
});

const brief = (e: EntityEvent): string => `${e.action} ${e.entity.key}`;

describe('the CLI with state.dir', () => {
  it('restarts without amnesia: what changed while it was stopped comes out, and nothing else', async () => {
    os = await startOpenStackServer({ servers: 20 });
    const dir = run.workdir('state-');
    const config = join(dir, 'synchronizer.yaml');
    writeFileSync(
      config,
      [
        'log: info',
        'state:',
        '  dir: ./state',
        'sources:',
        '  - name: nova',
        '    use: openstack.nova',
        '    interval: 200ms',
        '    region: RegionOne',
        `    auth: ${JSON.stringify(os.auth)}`,
        '',
      ].join('\n'),
    );
    const polls = (): number => os!.requestsTo('/servers/detail').length;

    const first = run.cli('--config', config);
    await waitFor('20 instances', () => first.events.filter((e) => e.entity.type === 'nova.instance').length === 20, { context: () => first.stderr });
    // Two more polls: the first run's state is settled and persisted.
    const seen = polls();
    await waitFor('two more polls', () => polls() >= seen + 2, { context: () => first.stderr });
    const firstRun = first.events.length;
    expect(first.events.every((e) => e.action === 'create')).toBe(true);
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    // While it is stopped: two servers deleted, one changed, one added.
    const servers = os.state.servers;
    const gone = [servers[3]!.id, servers[11]!.id];
    os.state.servers = servers.filter((s) => !gone.includes(s.id));
    const changed = os.state.servers[0]!;
    changed.status = 'SHUTOFF';
    changed['OS-EXT-STS:vm_state'] = 'stopped';
    changed['OS-EXT-STS:power_state'] = 4;
    os.state.servers.push({ ...structuredClone(servers[1]!), id: serverId(100), name: 'vm-100' });

    const second = run.cli('--config', config);
    await waitFor('the changes', () => second.events.length >= 4, { context: () => second.stderr });
    const from = polls();
    await waitFor('three more polls', () => polls() >= from + 3, { context: () => second.stderr });
    expect(second.stderr).toMatch(new RegExp(`"state loaded".*"entities":${firstRun}`));
    expect(second.events.map(brief).sort()).toEqual(
      [`create nova.instance:${serverId(100)}`, `delete nova.instance:${gone[0]}`, `delete nova.instance:${gone[1]}`, `update nova.instance:${changed.id as string}`].sort(),
    );
    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
  });

  it('past shutdownDeadline exits 1 and says what was left; a second signal exits at once', async () => {
    const dir = run.workdir('state-');
    writeFileSync(join(dir, 'topology.yaml'), 'entities:\n  - { type: nova.host, id: h1, state: up }\n  - { type: nova.host, id: h2, state: up }\n');
    // A sink whose broker never answers: its events are never confirmed, so nothing can be acked.
    const config = async (deadline: string): Promise<string> => {
      const file = join(dir, `synchronizer-${deadline}.yaml`);
      writeFileSync(
        file,
        `log: info\nstate: { dir: ./state-${deadline} }\nshutdownDeadline: ${deadline}\nsources:\n  - { name: t, use: static, file: ./topology.yaml }\n` +
          `sinks:\n  - { use: amqp, url: "amqp://127.0.0.1:${await freePort()}/", reconnectDelay: 100ms }\n`,
      );
      return file;
    };
    const slow = run.cli('--config', await config('1s'));
    // Its snapshot went through the baseline (and waits for the sink): a SIGTERM before that would
    // leave nothing taken, and so nothing unsettled.
    await waitFor('the observation to be taken', () => slow.stderr.includes('"first complete snapshot"'), 30_000);
    slow.child.kill('SIGTERM');
    expect(await slow.exited).toBe(1);
    expect(slow.stderr).toMatch(/"shutdown deadline passed, exiting with work left".*"deadlineMs":1000.*"unsettledObservations":1/);

    const twice = run.cli('--config', await config('60s'));
    await waitFor('the start', () => twice.stderr.includes('"synchronizer started"'), 30_000);
    twice.child.kill('SIGTERM');
    await waitFor('the drain', () => twice.stderr.includes('"draining"'), 10_000);
    const second = Date.now();
    twice.child.kill('SIGTERM');
    expect(await twice.exited).toBe(1);
    expect(Date.now() - second).toBeLessThan(10_000);
    expect(twice.stderr).toContain('second signal, exiting at once');
  });

  it('refuses a state folder that is not its own, with a clear message, and leaves it alone', async () => {
    const dir = run.workdir('state-');
    writeFileSync(join(dir, 'precious.txt'), 'do not delete');
    writeFileSync(join(dir, 'synchronizer.yaml'), `log: debug\nstate:\n  dir: .\nsources:\n  - name: t\n    use: static\n    file: ./x.yaml\n`);
    const c = run.cli('--config', join(dir, 'synchronizer.yaml'));
    expect(await c.exited).toBe(2);
    expect(c.stderr).toMatch(/state\.dir .* holds files that are not the synchronizer's \(precious\.txt, synchronizer\.yaml\)/);
    // In our log format, with the stack at debug (every stderr line is one of ours).
    const lines = c.stderr.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const refusal = lines.find((l) => l.msg === 'the state folder cannot be used');
    expect(refusal).toMatchObject({ level: 'error', error: expect.stringContaining('precious.txt') });
    expect(refusal?.errorStack).toMatch(/^StateError: state\.dir [\s\S]*\n\s+at /);
  });
});
