/**
 * The status page in a real browser (Debian's chromium driven by playwright-core), served by the
 * real CLI polling the local OpenStack fixture server. SYNC_SCREENSHOTS=1 also writes the
 * screenshots in docs/.
 */
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cli, cliWorkdir, root } from '../support/cli.js';
import { type OpenStackServer, startOpenStackServer } from '../support/openstack-server.js';

const CHROMIUM = '/usr/bin/chromium';
const missing = existsSync(CHROMIUM) ? undefined : `${CHROMIUM} (Debian package chromium; scripts/test.sh installs it)`;
if (missing) console.warn(`SKIPPED status page browser test: missing ${missing}`);

describe.skipIf(missing !== undefined)('status page in chromium', () => {
  let os: OpenStackServer;
  let cli: Cli;
  let browser: Browser;
  let dir: string;
  let base: string;

  beforeAll(async () => {
    os = await startOpenStackServer();
    dir = cliWorkdir();
    const source = (name: string, use: string): unknown => ({ name, use, interval: '300ms', timeout: '10s', region: 'RegionOne', auth: os.auth });
    // JSON is YAML.
    const config = { log: 'info', listen: '127.0.0.1:0', sources: [source('nova', 'openstack.nova'), source('neutron', 'openstack.neutron'), source('cinder', 'openstack.cinder')] };
    writeFileSync(join(dir, 'synchronizer.yaml'), JSON.stringify(config, null, 2));
    cli = new Cli(['--config', join(dir, 'synchronizer.yaml')]);
    base = `http://${await cli.listenAddress()}`;
    // Only loopback: every other host name fails to resolve inside the browser.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'] });
  });

  afterAll(async () => {
    await browser?.close();
    cli?.child.kill('SIGKILL');
    await os?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows the counts, a new event without a reload, and the topology of an instance with its host', { timeout: 90_000 }, async () => {
    const servers = os.state.servers.length;
    await cli.waitFor(servers); // the first snapshots are in
    const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
    page.setDefaultTimeout(15_000);
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/`);

    // Counts by type, from /api/status.
    await page.locator('#counts tr[data-type="nova.instance"] td.num', { hasText: new RegExp(`^${servers}$`) }).waitFor();
    await page.locator('#sources tr[data-source="nova"] td.status', { hasText: 'up' }).waitFor();
    await page.locator('#ready', { hasText: /^ready$/ }).waitFor();

    // A server appears in the cloud: its create event reaches the open page (no reload).
    const added = structuredClone(os.state.servers[0]!) as Record<string, unknown>;
    added.id = 'b0b0b0b0-0000-4000-8000-00000000cafe';
    added.name = 'added-while-watching';
    os.state.servers.push(added);
    await page.locator('#events li[data-action="create"][data-key="nova.instance:b0b0b0b0-0000-4000-8000-00000000cafe"]').waitFor();
    await page.locator('#counts tr[data-type="nova.instance"] td.num', { hasText: new RegExp(`^${servers + 1}$`) }).waitFor();

    // The entity browser: search by name, open it; its parents are links; the topology shows its host.
    await page.fill('#q', 'added-while');
    await page.click('#search button');
    await page.locator('#results a[data-key="nova.instance:b0b0b0b0-0000-4000-8000-00000000cafe"]').click();
    const host = `nova.host:${String(added['OS-EXT-SRV-ATTR:host'])}`;
    await page.locator(`#entity-parents a[data-key="${host}"]`).waitFor();
    await page.locator(`#topology g.node.ancestor[data-key="${host}"]`).waitFor();
    await page.locator(`#topology path.edge[data-from="nova.instance:b0b0b0b0-0000-4000-8000-00000000cafe"][data-to="${host}"]`).waitFor({ state: 'attached' }); // a vertical path has no width: never "visible"

    // Following a parent link opens the host, whose topology goes on up to its zone.
    await page.locator(`#entity-parents a[data-key="${host}"]`).click();
    await page.locator('#entity-key', { hasText: host }).waitFor();
    const zones = await page.locator('#topology g.node.ancestor').evaluateAll((nodes) => nodes.map((n) => n.getAttribute('data-key')));
    expect(zones.some((k) => k?.startsWith('nova.zone:'))).toBe(true);
    expect(errors).toEqual([]);
    if (process.env.SYNC_SCREENSHOTS === '1') {
      // A recorded server, with its ports and volumes, for docs/.
      await page.goto(`${base}/#${encodeURIComponent(`nova.instance:${String(os.state.servers[0]!.id)}`)}`);
      await page.locator('#topology g.node.self').waitFor();
      await page.locator('#topology g.node.descendant').first().waitFor();
      await page.screenshot({ path: join(root, 'docs', 'status-page.png') });
    }
    await page.close();
  });
});
