/**
 * Property-based fuzzing of every decoder of outside input, fed arbitrary values and mutated real
 * samples (../shared/fixtures/wire): each one returns or throws a deliberate Error that names what
 * was wrong; never a TypeError or RangeError from reading what is not there, never a hang. The
 * consumer turns those errors into refusals and goes on (test/integration/amqp-hostile-broker).
 * Runs are bounded for CI: FUZZ_RUNS (default 200) per property.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseTransportUrl, redactUrl } from '../../src/amqp.js';
import { parseConfig } from '../../src/config.js';
import { ConfigError } from '../../src/options.js';
import { alertDraft, parseAlerts } from '../../sources/alertmanager.js';
import { nagiosDraft } from '../../sources/nagios.js';
import { parseStatusJson, parseStatusPage } from '../../sources/nagios/status.js';
import { findEndpoint, parseTokenResponse } from '../../sources/openstack/keystone.js';
import { decodeNotification, notificationDraft, routeEvent } from '../../sources/openstack/notifications.js';
import { FIXTURES } from '../support/fixtures.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 200);
const WIRE = join(FIXTURES, 'wire');
const text = (...p: string[]): string => readFileSync(join(WIRE, ...p), 'utf8');
const json = (...p: string[]): unknown => JSON.parse(text(...p));

/** Ran to completion, or threw a deliberate Error (not a TypeError/RangeError of a careless read). */
function deliberate(run: () => unknown): void {
  try {
    run();
  } catch (e) {
    expect(e).toBeInstanceOf(Error);
    expect(e instanceof TypeError || e instanceof RangeError || e instanceof SyntaxError || e instanceof ReferenceError, (e as Error).stack).toBe(false);
    expect((e as Error).message.length).toBeGreaterThan(0);
  }
}

/** Every node of a JSON value, depth first, as [parent, key] pairs. */
function slots(value: unknown, out: [Record<string, unknown> | unknown[], string | number][] = []): typeof out {
  if (Array.isArray(value)) value.forEach((v, i) => (out.push([value, i]), slots(v, out)));
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) out.push([value as Record<string, unknown>, k]), slots(v, out);
  return out;
}

/** A real sample with up to 3 of its nodes replaced by arbitrary JSON (or deleted). */
function mutated(sample: unknown): fc.Arbitrary<unknown> {
  return fc.array(fc.tuple(fc.nat(), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })), { minLength: 1, maxLength: 3 }).map((edits) => {
    const copy = structuredClone(sample);
    for (const [n, value] of edits) {
      const all = slots(copy);
      if (all.length === 0) return value;
      const [parent, key] = all[n % all.length]!;
      if (value === undefined && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
      else (parent as Record<string | number, unknown>)[key] = value;
    }
    return copy;
  });
}

/** A real text with a few slices cut, doubled or replaced by arbitrary text. */
function mutatedText(sample: string): fc.Arbitrary<string> {
  return fc.array(fc.tuple(fc.nat(sample.length), fc.nat(200), fc.string({ maxLength: 40 }), fc.constantFrom('cut', 'dup', 'put')), { minLength: 1, maxLength: 4 }).map((edits) => {
    let s = sample;
    for (const [at, len, put, how] of edits) {
      const i = at % (s.length + 1);
      s = how === 'cut' ? s.slice(0, i) + s.slice(i + len) : how === 'dup' ? s.slice(0, i + len) + s.slice(i) : s.slice(0, i) + put + s.slice(i + len);
    }
    return s;
  });
}

const anything = fc.oneof(fc.jsonValue(), fc.anything());

describe('fuzz: oslo notifications (envelope and payloads of every family)', () => {
  const bodies = readFileSync(join(WIRE, 'real-openstack', 'all-deliveries.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const d = JSON.parse(l) as { body?: unknown };
      return typeof d.body === 'string' ? d.body : JSON.stringify(d.body ?? d);
    });
  const samples = [...bodies.slice(0, 40), text('oslo-v1-compute.instance.create.end.body.json'), text('oslo-v2-instance.create.end.body.json')];
  const decodeAndMap = (body: Buffer | string): void =>
    deliberate(() => {
      const n = decodeNotification(body);
      const route = routeEvent(n.eventType);
      if (route && route.action !== 'ignore') notificationDraft({ family: route.family, action: route.action, notification: n });
    });

  it('arbitrary bytes and strings', () => {
    fc.assert(fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)), fc.string()), decodeAndMap), { numRuns: RUNS });
  });

  it('real deliveries with the inner message mutated', () => {
    const inner = samples.map((b) => {
      const outer = JSON.parse(b) as Record<string, unknown>;
      return typeof outer['oslo.message'] === 'string' ? (JSON.parse(outer['oslo.message']) as unknown) : outer;
    });
    fc.assert(
      fc.property(fc.constantFrom(...inner).chain(mutated), fc.boolean(), (message, v2) =>
        decodeAndMap(JSON.stringify(v2 ? { 'oslo.version': '2.0', 'oslo.message': JSON.stringify(message) } : message)),
      ),
      { numRuns: RUNS },
    );
  });

  it('real bodies mutated as text', () => {
    fc.assert(fc.property(fc.constantFrom(...samples).chain(mutatedText), decodeAndMap), { numRuns: RUNS });
  });
});

describe('fuzz: Nagios', () => {
  const hostlist = json('nagios-statusjson-hostlist-details.json');
  const servicelist = json('nagios-statusjson-servicelist-details.json');
  const page = text('nagios-status.cgi-host-all-style-detail.html');
  const readJson = (doc: unknown, query: 'hostlist' | 'servicelist'): void =>
    deliberate(() => {
      for (const r of parseStatusJson(doc, query, 'http://nagios/statusjson.cgi')) nagiosDraft(r);
    });

  it('statusjson: arbitrary and mutated real answers', () => {
    fc.assert(fc.property(anything, (doc) => readJson(doc, 'hostlist')), { numRuns: RUNS });
    fc.assert(fc.property(mutated(hostlist), (doc) => readJson(doc, 'hostlist')), { numRuns: RUNS });
    fc.assert(fc.property(mutated(servicelist), (doc) => readJson(doc, 'servicelist')), { numRuns: RUNS });
  });

  it('status.cgi HTML: arbitrary and mutated real pages', () => {
    const read = (html: string): void =>
      deliberate(() => {
        for (const r of parseStatusPage(html, 'services', 'http://nagios/status.cgi')) nagiosDraft(r);
      });
    fc.assert(fc.property(fc.string({ maxLength: 500 }).map((s) => `<html>status${s}`), read), { numRuns: RUNS });
    fc.assert(fc.property(mutatedText(page), read), { numRuns: RUNS });
  });
});

describe('fuzz: Alertmanager', () => {
  const alerts = json('alertmanager-v2-get-alerts.json');
  it('arbitrary and mutated real /api/v2/alerts answers', () => {
    const read = (doc: unknown): void =>
      deliberate(() => {
        for (const a of parseAlerts(doc, 'http://am/api/v2/alerts')) alertDraft(a);
      });
    fc.assert(fc.property(anything, read), { numRuns: RUNS });
    fc.assert(fc.property(mutated(alerts), read), { numRuns: RUNS });
  });
});

describe('fuzz: Keystone token and catalog', () => {
  const token = json('real-openstack', 'api', 'api-keystone-post-auth-tokens.json');
  it('arbitrary and mutated real token answers, then an endpoint lookup', () => {
    const read = (body: unknown, subject: string | undefined): void =>
      deliberate(() => {
        const t = parseTokenResponse(subject, body, 'POST http://keystone/v3/auth/tokens');
        findEndpoint(t.catalog, ['compute'], 'public', 'RegionOne');
      });
    fc.assert(fc.property(anything, fc.option(fc.string(), { nil: undefined }), read), { numRuns: RUNS });
    fc.assert(fc.property(mutated(token), (body) => read(body, 'gAAAA')), { numRuns: RUNS });
  });
});

describe('fuzz: config and transport URLs', () => {
  it('an arbitrary config document is accepted or refused with a ConfigError', async () => {
    const doc = fc.oneof(
      anything,
      fc.record({ sources: fc.array(fc.dictionary(fc.constantFrom('name', 'use', 'url', 'interval', 'tls', 'password', 'transportUrl', 'file'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 3 }) }),
      fc.record({ sources: fc.constant([{ name: 'a', use: 'alertmanager', url: 'http://127.0.0.1:9093' }]), sinks: fc.array(fc.dictionary(fc.constantFrom('use', 'url', 'exchange', 'tls', 'maxMessageSize'), fc.jsonValue({ maxDepth: 2 })), { maxLength: 2 }) }),
    );
    await fc.assert(
      fc.asyncProperty(doc, async (d) => {
        try {
          await parseConfig(d, process.cwd());
        } catch (e) {
          expect(e, (e as Error).stack).toBeInstanceOf(ConfigError);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('transport URLs: parsed or refused; the redacted form never throws', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.webUrl().map((u) => u.replace(/^https?:/, 'rabbit:')), fc.tuple(fc.string(), fc.string()).map(([u, p]) => `rabbit://${u}:${p}@127.0.0.1:5672/`)), (url) => {
        redactUrl(url);
        deliberate(() => parseTransportUrl(url));
      }),
      { numRuns: RUNS },
    );
  });
});
