/**
 * Inputs written to hurt: Nagios pages with impossible character references and tag soup,
 * transport URLs whose passwords hold URL syntax, config secrets by reference, YAML errors next to
 * secrets, and made-up event types named after Object.prototype's members.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTransportUrl, redactUrl } from '../../src/amqp.js';
import { loadConfig, parseConfig } from '../../src/config.js';
import { parseSize } from '../../src/options.js';
import { parseYamlQuietly, resolveReferences } from '../../src/secrets.js';
import { decode, parseStatusPage } from '../../sources/nagios/status.js';

const dir = mkdtempSync(join(tmpdir(), 'sync-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('status.cgi character references', () => {
  it('out-of-range numeric references become U+FFFD instead of throwing', () => {
    expect(decode('a&#99999999;b&#x110000;c&#0;d&#xD800;e')).toBe('a\uFFFDb\uFFFDc\uFFFDd\uFFFDe');
    expect(decode('&#65;&#x42;&lt;&amp;&quot;&#39;&nbsp;')).toBe('AB<&"\' ');
  });

  it('names of Object.prototype members are left as they are', () => {
    expect(decode('&constructor;&__proto__;&toString;&hasOwnProperty;&valueOf;')).toBe('&constructor;&__proto__;&toString;&hasOwnProperty;&valueOf;');
  });

  it('tag soup of a few hundred KB is read (no quadratic rescans) and refused with a clear error', () => {
    const soups = [
      `<html>status${'<td '.repeat(60_000)}`,
      `<html>status<td>${'<'.repeat(200_000)}</td>`,
      `<html>status${'<td><a href="extinfo.cgi?type=2&host=h&service=s">s</a></td>'.repeat(5_000)}`,
      `<html>status${'&#'.repeat(100_000)}${'&a'.repeat(100_000)}`,
    ];
    for (const html of soups) expect(() => parseStatusPage(html, 'services', 'http://nagios/status.cgi')).toThrow(/http:\/\/nagios\/status\.cgi: /);
  });
});

describe('transport URLs: parsed as oslo does, redacted alike', () => {
  const cases: [string, string][] = [
    ['rabbit://nova:p%40ss%2Cw%2Fo%25rd%3F@10.0.0.1:5672/', 'p@ss,w/o%rd?'],
    ['rabbit://nova:p@ss@10.0.0.1:5672/', 'p@ss'],
    ['rabbit://nova:pa:ss@10.0.0.1/', 'pa:ss'],
    ['rabbit://nova:100%pure@10.0.0.1/', '100%pure'],
  ];
  it.each(cases)('%s → the password whole, and never a piece of it in the redacted form', (url, password) => {
    expect(parseTransportUrl(url)[0]!.password).toBe(password);
    const shown = redactUrl(url);
    expect(shown).toContain('nova:***@10.0.0.1');
    for (const piece of ['ss', 'pure', 'o%25rd', 'pa']) if (password.includes(piece.replace('%25', '%'))) expect(shown).not.toContain(piece);
  });

  it('an unencoded , / or # in a password is refused, and the message shows no piece of it', () => {
    for (const [url, secret] of [
      ['rabbit://nova:sec,ret99@10.0.0.1/', 'ret99'],
      ['rabbit://nova:sec/ret99@10.0.0.1/', 'ret99'],
      ['rabbit://nova:xx,ret99@h1,nova:yy@h2/', 'ret99'],
    ] as const) {
      let message = '';
      try {
        parseTransportUrl(url);
      } catch (e) {
        message = (e as Error).message;
      }
      expect(message).toMatch(/must be percent-encoded/);
      expect(message).not.toContain(secret);
      expect(message).not.toContain('sec');
      expect(redactUrl(url)).not.toContain(secret);
    }
  });
});

describe('secrets by reference', () => {
  it('${NAME} and ${file:PATH} are resolved in any string; $${ is a literal', () => {
    writeFileSync(join(dir, 'nagios.pass'), 's3cret-from-file\n');
    const doc = { sources: [{ name: 'x', password: '${file:nagios.pass}', url: 'rabbit://u:${RABBIT_PW}@h/', literal: 'a$${b}' }] };
    expect(resolveReferences(doc, dir, { RABBIT_PW: 'pw' })).toEqual({ sources: [{ name: 'x', password: 's3cret-from-file', url: 'rabbit://u:pw@h/', literal: 'a${b}' }] });
  });

  it('a missing variable or file is a config error naming the key path', async () => {
    delete process.env.SYNC_TEST_UNSET;
    await expect(parseConfig({ sources: [{ name: 'n', use: 'nagios', url: 'http://n/', username: 'u', password: '${SYNC_TEST_UNSET}' }] }, dir)).rejects.toThrow(
      /^sources\[0\]\.password: references the environment variable SYNC_TEST_UNSET, which is not set$/,
    );
    await expect(parseConfig({ sources: [{ name: 'n', use: 'nagios', url: 'http://n/', username: 'u', password: '${file:missing.pass}' }] }, dir)).rejects.toThrow(
      /^sources\[0\]\.password: cannot read the secret file .*missing\.pass/,
    );
    await expect(parseConfig({ sources: [{ name: 'n', use: 'nagios', url: 'http://n/', username: 'u', password: '${oops' }] }, dir)).rejects.toThrow(/^sources\[0\]\.password: a \$\{ with no closing \}/);
  });

  it('a reference works end to end through a config file', async () => {
    process.env.SYNC_TEST_NAGIOS_PW = 'from-env';
    const file = join(dir, 'ref.yaml');
    writeFileSync(file, 'sources:\n  - name: mon\n    use: nagios\n    url: http://127.0.0.1:1/cgi-bin\n    username: nagiosadmin\n    password: ${SYNC_TEST_NAGIOS_PW}\n');
    const config = await loadConfig(file);
    expect((config.sources[0]!.options as { password?: string }).password).toBe('from-env');
  });
});

describe('YAML errors do not quote the line', () => {
  it('says where, not what', () => {
    const text = 'clouds:\n  prod:\n    auth:\n      password: "hunter2-secret\n      username: admin\n';
    let message = '';
    try {
      parseYamlQuietly(text, '/etc/openstack/clouds.yaml');
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/^\/etc\/openstack\/clouds\.yaml is not valid YAML: \w+ at line \d+, column \d+ \(the line is not shown/);
    expect(message).not.toContain('hunter2');
  });
});

describe('sizes', () => {
  it('parses 64MiB, 512KiB, 10MB and plain bytes; refuses the rest', () => {
    expect([parseSize('64MiB'), parseSize('512 KiB'), parseSize('10MB'), parseSize(1000), parseSize('0'), parseSize('lots')]).toEqual([64 * 1024 * 1024, 512 * 1024, 10_000_000, 1000, undefined, undefined]);
  });
});
