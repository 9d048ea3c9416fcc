/**
 * OpenStack behind a private CA: the local OpenStack over HTTPS with a CA made in the setup
 * (openssl), reached through clouds.yaml `cacert`, mutual TLS (`cert`/`key`), OS_CACERT, a wrong
 * CA (clear error naming the URL) and `verify: false` (works, warned about).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSources, parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import { type Synchronizer, createSynchronizer } from '../../src/synchronizer.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';
import { type TestPki, makeTestPki } from '../support/tls.js';
import { waitFor } from '../support/wait.js';

let pki: TestPki;
let dir: string;
let os: OpenStackServer | undefined;
let sync: Synchronizer | undefined;
let logs: string[] = [];
const saved = { ...process.env };

beforeAll(() => {
  pki = makeTestPki();
  dir = mkdtempSync(join(tmpdir(), 'sync-tls-os-'));
});
afterAll(() => {
  pki.dispose();
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  sync?.stop();
  sync = undefined;
  await os?.close();
  os = undefined;
  process.env = { ...saved };
});

/** A clouds.yaml of one cloud `secure` with these TLS keys, found through OS_CLIENT_CONFIG_FILE. */
function cloudsYaml(server: OpenStackServer, tlsKeys: Record<string, unknown>): void {
  const file = join(dir, `clouds-${Math.random().toString(36).slice(2)}.yaml`);
  const auth = Object.entries(server.auth).map(([k, v]) => `        ${k}: ${JSON.stringify(v)}`).join('\n');
  // Keys of the cloud entry sit at 4 spaces, auth's at 8.
  writeFileSync(file, ['clouds:', '  secure:', '    region_name: RegionOne', ...Object.entries(tlsKeys).map(([k, v]) => `    ${k}: ${JSON.stringify(v)}`), '    auth:', auth.replace(/^ {8}/gm, '      '), ''].join('\n'));
  process.env.OS_CLIENT_CONFIG_FILE = file;
}

async function startNova(source: Record<string, unknown>): Promise<Synchronizer> {
  const config = await parseConfig({ sources: [{ name: 'nova', use: 'openstack.nova', interval: '300ms', timeout: '5s', requestTimeout: '2s', ...source }], sinks: [] }, dir);
  logs = [];
  const log = createLogger('debug', (line) => logs.push(line));
  const s = createSynchronizer({ sources: createSources(config.sources, { log }) });
  s.start();
  sync = s;
  return s;
}

describe('OpenStack over TLS with a private CA', () => {
  it('clouds.yaml cacert: Keystone and the catalog endpoints are trusted', async () => {
    os = await startOpenStackServer({ tls: { key: pki.serverKey, cert: pki.serverCert } });
    expect(os.url).toMatch(/^https:/);
    cloudsYaml(os, { cacert: pki.files.ca });
    const s = await startNova({ cloud: 'secure' });
    // Up once the poll succeeded; its servers, handed over page by page, are in the baseline once
    // their last slice and the snapshot's step have run (a turn or more later on a busy machine).
    await waitFor('nova up and its servers', () => s.health().nova?.status === 'up' && s.snapshot(['nova.instance']).length > 0, { context: () => JSON.stringify(s.health()) });
  });

  it('mutual TLS: cert and key are presented; without them the server refuses', async () => {
    os = await startOpenStackServer({ tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca } });
    cloudsYaml(os, { cacert: pki.files.ca, cert: pki.files.clientCert, key: pki.files.clientKey });
    const s = await startNova({ cloud: 'secure' });
    await waitFor('nova up', () => s.health().nova?.status === 'up', { context: () => JSON.stringify(s.health()) });
    s.stop();

    cloudsYaml(os, { cacert: pki.files.ca });
    const refused = await startNova({ cloud: 'secure', interval: '1h' });
    const down = await waitFor('nova down', () => refused.health().nova?.status === 'down' && refused.health().nova);
    expect(down.error).toContain(`${os.authUrl}/auth/tokens`);
  });

  it('OS_CACERT / OS_CERT / OS_KEY with OS_* credentials', async () => {
    os = await startOpenStackServer({ tls: { key: pki.serverKey, cert: pki.serverCert, ca: pki.ca } });
    Object.assign(process.env, {
      OS_AUTH_URL: os.authUrl,
      OS_USERNAME: os.username,
      OS_PASSWORD: os.password,
      OS_PROJECT_NAME: 'admin',
      OS_USER_DOMAIN_NAME: 'Default',
      OS_PROJECT_DOMAIN_NAME: 'Default',
      OS_REGION_NAME: 'RegionOne',
      OS_CACERT: pki.files.ca,
      OS_CERT: pki.files.clientCert,
      OS_KEY: pki.files.clientKey,
    });
    delete process.env.OS_CLOUD;
    delete process.env.OS_CLIENT_CONFIG_FILE;
    const s = await startNova({});
    await waitFor('nova up', () => s.health().nova?.status === 'up', { context: () => JSON.stringify(s.health()) });
  });

  it('a wrong CA fails with a clear error naming the URL; verify: false works and is warned about', async () => {
    os = await startOpenStackServer({ tls: { key: pki.serverKey, cert: pki.serverCert } });
    cloudsYaml(os, { cacert: pki.files.otherCa });
    const wrong = await startNova({ cloud: 'secure', interval: '1h' });
    const down = await waitFor('nova down', () => wrong.health().nova?.status === 'down' && wrong.health().nova);
    expect(down.error).toContain(`POST ${os.authUrl}/auth/tokens failed: TLS:`);
    expect(down.error).toMatch(/set the CA that signed the server's certificate/);
    wrong.stop();

    cloudsYaml(os, { verify: false });
    const s = await startNova({ cloud: 'secure' });
    await waitFor('nova up', () => s.health().nova?.status === 'up', { context: () => JSON.stringify(s.health()) });
    expect(logs.filter((l) => l.includes('"level":"warn"') && l.includes('verification is OFF'))[0]).toContain('keystone (clouds.yaml cloud \\"secure\\"');
  });

  it("the source's own tls block overrides the cloud's, and a missing CA file is a config error naming the key", async () => {
    os = await startOpenStackServer({ tls: { key: pki.serverKey, cert: pki.serverCert } });
    const s = await startNova({ auth: os.auth, region: 'RegionOne', tls: { ca: pki.files.ca } });
    await waitFor('nova up', () => s.health().nova?.status === 'up', { context: () => JSON.stringify(s.health()) });
    await expect(startNova({ auth: os.auth, tls: { ca: join(dir, 'nope.pem') } })).rejects.toThrow(/^sources\[0\]\.tls\.ca: cannot read the CA certificate file .*nope\.pem/);
  });
});
