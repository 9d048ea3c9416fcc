import { defer, map, mergeMap } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { HttpError, retryHttp } from '../../src/http.js';
import { type CloudConfig, type KeystoneToken, KeystoneSession } from '../../sources/openstack/keystone.js';
import { marbles } from '../support/marbles.js';

const err = (status: number, retryAfterMs?: number): HttpError =>
  new HttpError(`GET http://127.0.0.1/x failed with ${status}`, 'GET', 'http://127.0.0.1/x', status, status >= 500 || status === 429, retryAfterMs);

describe('retryHttp (virtual time)', () => {
  it(
    'backs off exponentially on 5xx and gives up after `retries`',
    marbles((m) => {
      const source = m.cold('-#', undefined, err(503));
      const result = source.pipe(retryHttp({ retries: 3, backoff: { initialMs: 10, jitter: 0 }, scheduler: m.scheduler }));
      // Errors at 1; retries after 10, 20, 40 ms.
      m.expect(result).toBeObservable('74ms #', undefined, err(503));
      m.expect(source).toHaveSubscriptions(['^!', '11ms ^!', '32ms ^!', '73ms ^!']);
    }),
  );

  it(
    'waits the Retry-After of a 429 instead of the backoff',
    marbles((m) => {
      let attempts = 0;
      const source = defer(() => (attempts++ === 0 ? m.cold('-#', undefined, err(429, 50)) : m.cold('-a|')));
      m.expect(source.pipe(retryHttp({ backoff: { initialMs: 10, jitter: 0 }, scheduler: m.scheduler }))).toBeObservable('52ms a|');
    }),
  );

  it(
    'fails at once on a 4xx other than 429',
    marbles((m) => {
      const source = m.cold('-#', undefined, err(404));
      m.expect(source.pipe(retryHttp({ scheduler: m.scheduler }))).toBeObservable('-#', undefined, err(404));
      m.expect(source).toHaveSubscriptions(['^!']);
    }),
  );

  it(
    'cancels a pending retry on unsubscribe',
    marbles((m) => {
      const source = m.cold('-#', undefined, err(500));
      m.expect(source.pipe(retryHttp({ backoff: { initialMs: 10, jitter: 0 }, scheduler: m.scheduler })), '^ 5ms !').toBeObservable('');
      m.expect(source).toHaveSubscriptions(['^!']);
    }),
  );
});

const cloud: CloudConfig = { credentials: { authUrl: 'http://127.0.0.1:1/v3', authType: 'password', username: 'u', password: 'p', projectName: 'p' }, interface: 'public', origin: 'test' };

describe('KeystoneSession renewal (virtual time)', () => {
  it(
    'authenticates once for concurrent requests, reuses a fresh token, renews before expiry',
    marbles((m) => {
      let n = 0;
      const session = new KeystoneSession(cloud, {
        scheduler: m.scheduler,
        renewBeforeMs: 10,
        authenticate: () =>
          defer(() => {
            const now = m.scheduler.now();
            n += 1;
            const token: KeystoneToken = { id: `t${n}`, issuedAt: now, expiresAt: now + 100, catalog: [] };
            return m.cold('--a|', { a: token });
          }),
      });
      // Requests at 0 and 1 (while authenticating), 50 (fresh), 91 (within 10 ms of expiry at 100).
      const requests = m.hot('ab 48ms c 40ms d');
      const ids = requests.pipe(mergeMap(() => session.token$().pipe(map((t) => t.id))));
      m.expect(ids).toBeObservable('--(xx) 44ms x 42ms y', { x: 't1', y: 't2' });
      m.scheduler.flush();
      expect(session.authentications).toBe(2);
    }),
  );

  it(
    'authenticates again after a service refused the token (401), not before',
    marbles((m) => {
      let n = 0;
      const session = new KeystoneSession(cloud, {
        scheduler: m.scheduler,
        authenticate: () => defer(() => m.cold('-a|', { a: { id: `t${++n}`, issuedAt: 0, expiresAt: 3_600_000, catalog: [] } satisfies KeystoneToken })),
      });
      const requests = m.hot('a 9ms b 9ms c', { a: 'use', b: 'refused', c: 'use' });
      const ids = requests.pipe(
        mergeMap((what) => {
          if (what === 'refused') session.auth.unauthorized?.({ 'X-Auth-Token': 't1' });
          return session.token$().pipe(map((t) => t.id));
        }),
      );
      // b: t1 was dropped, so a new token (t2) one frame later; c reuses t2.
      m.expect(ids).toBeObservable('-x 9ms y 8ms y', { x: 't1', y: 't2' });
    }),
  );

  it('a token is fresh until the renewal margin, at most half its lifetime', async () => {
    const { tokenIsFresh } = await import('../../sources/openstack/keystone.js');
    const hour = { issuedAt: 0, expiresAt: 3_600_000 };
    expect(tokenIsFresh(hour, 3_300_000 - 1, 300_000)).toBe(true);
    expect(tokenIsFresh(hour, 3_300_000, 300_000)).toBe(false);
    const short = { issuedAt: 0, expiresAt: 60_000 };
    expect(tokenIsFresh(short, 29_999, 300_000)).toBe(true);
    expect(tokenIsFresh(short, 30_000, 300_000)).toBe(false);
  });
});
