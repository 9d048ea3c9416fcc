// An example source plugin, loaded by module path from a config file:
//
//   sources:
//     - name: hosts
//       use: ./plugins/hosts-file.js
//       file: /etc/hosts
//       interval: 10s
//
// Every name in an /etc/hosts-style file becomes a `hosts.entry` entity; the file is polled with
// the synchronizer's own poll helper (interval, timeout, backoff, health).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { defineSource, pollSnapshots } from 'synchronizer';

/** `127.0.0.1 localhost db` → [{ ip, name }, …] */
function parseHosts(text) {
  return text
    .split('\n')
    .map((line) => line.replace(/#.*/, '').trim().split(/\s+/))
    .filter((fields) => fields.length >= 2)
    .flatMap(([ip, ...names]) => names.map((name) => ({ ip, name })));
}

export default defineSource({
  options: (read) => ({
    file: read.string('file', '/etc/hosts'),
    intervalMs: read.duration('interval', 30_000),
    timeoutMs: read.duration('timeout', 5_000),
  }),
  create: (options, { name, scheduler, configDir }) => ({
    name,
    types: ['hosts.entry'],
    signal$: pollSnapshots(async () => parseHosts(await readFile(resolve(configDir, options.file), 'utf8')), {
      ...options,
      scheduler,
      source: name,
      types: ['hosts.entry'],
    }),
    map: (entry) => ({ type: 'hosts.entry', id: entry.name, state: 'PRESENT', attributes: { ip: entry.ip } }),
  }),
});
