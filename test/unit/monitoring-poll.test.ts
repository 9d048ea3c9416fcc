import { type Server, type Socket, createServer } from 'node:net';
import { map } from 'rxjs';
import { afterAll, beforeAll, describe, it } from 'vitest';
import alertmanagerSource from '../../sources/alertmanager.js';
import nagiosSource from '../../sources/nagios.js';
import { errorMessage, silentLogger } from '../../src/log.js';
import { OptionReader } from '../../src/options.js';
import type { SourcePlugin, SourceSignal } from '../../src/source.js';
import { marbles } from '../support/marbles.js';

// A server that accepts connections and never answers: a hung Nagios or Alertmanager.
let server: Server;
let url = '';
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function create(plugin: SourcePlugin<unknown>, options: Record<string, unknown>, scheduler: Parameters<SourcePlugin<unknown>['create']>[1]['scheduler']) {
  const read = new OptionReader(options, 'sources[0]');
  const parsed = plugin.options(read);
  read.done();
  return plugin.create(parsed, { name: 'mon', scheduler, log: silentLogger, configDir: '.' });
}

const label = (s: SourceSignal<unknown>): string => (s.kind === 'health' ? `${s.status}: ${s.error === undefined ? '' : errorMessage(s.error)}` : s.kind);

describe('monitoring sources in virtual time', () => {
  for (const [name, plugin, options] of [
    ['nagios', nagiosSource, () => ({ url: `${url}/cgi-bin/nagios4`, username: 'u', password: 'p' })],
    ['alertmanager', alertmanagerSource, () => ({ url })],
  ] as const) {
    it(
      `${name}: a server that never answers is a health error at the poll timeout, never a snapshot`,
      marbles((m) => {
        const source = create(plugin as SourcePlugin<unknown>, { ...options(), interval: '30s', timeout: '1s', backoff: '10s', maxBackoff: '10s' }, m.scheduler);
        // Down at 1 s (the poll's timeout, before the transport's own retry), next attempt 8–10 s later.
        m.expect(source.signal$.pipe(map(label)), '^ 5s !').toBeObservable('1s d', { d: 'down: poll timed out after 1000 ms' });
      }),
    );
  }
});
