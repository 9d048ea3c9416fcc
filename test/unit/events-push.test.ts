import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, createSource } from '../../src/index.js';
import { type PushTarget, startPushSource } from '../support/push.js';

const TOKEN = 'ev-t0ken-123';
const auth = { authorization: `Bearer ${TOKEN}` };

let target: PushTarget | undefined;
afterEach(() => {
  target?.stop();
  target = undefined;
});

const start = async (extra: Record<string, unknown> = {}): Promise<PushTarget> => (target = await startPushSource('events', '/events', { token: TOKEN, ...extra }));

describe('events push endpoint (use: events) and the HTTP push transport', () => {
  it('applies a JSON list and answers only after the entities were emitted, listing what was applied', async () => {
    const t = await start();
    const seenBeforeAnswer: number[] = [];
    const answer = t.post(
      [
        { type: 'doctor.host', id: 'compute-1', state: 'down', name: 'compute-1', attributes: { reason: 'nic' } },
        { type: 'doctor.vm', id: 'vm-1', state: 'error', parents: [{ type: 'doctor.host', id: 'compute-1' }] },
      ],
      { headers: auth },
    );
    const res = await answer.then((r) => (seenBeforeAnswer.push(t.events.length), r));
    expect(res.status).toBe(200);
    expect(seenBeforeAnswer[0]).toBe(2); // both emitted before the answer
    expect(res.body).toEqual({
      applied: 2,
      results: [
        { index: 0, action: 'upsert', key: 'doctor.host:compute-1' },
        { index: 1, action: 'upsert', key: 'doctor.vm:vm-1' },
      ],
    });
    expect(t.events.every((e) => e.origin === 'notification')).toBe(true);
    expect(t.events.map((e) => [e.action, e.entity.key, e.entity.state])).toEqual([
      ['create', 'doctor.host:compute-1', 'DOWN'],
      ['create', 'doctor.vm:vm-1', 'ERROR'],
    ]);
    expect(t.events[1]!.entity.parents).toEqual([{ type: 'doctor.host', id: 'compute-1' }]);
    expect(t.events[0]!.entity).toMatchObject({ source: 'push', attributes: { reason: 'nic' } });
  });

  it('takes NDJSON, one event per line, and deletes with action: delete', async () => {
    const t = await start();
    const ndjson = ['{"type":"doctor.host","id":"h1","state":"up"}', '', '{"type":"doctor.host","id":"h2","state":"up"}'].join('\n');
    expect((await t.post(ndjson, { headers: { ...auth, 'content-type': 'application/x-ndjson' } })).status).toBe(200);
    const res = await t.post({ type: 'doctor.host', id: 'h1', action: 'delete' }, { headers: auth });
    expect(res.status).toBe(200);
    expect(t.events.map((e) => `${e.action} ${e.entity.key}`)).toEqual(['create doctor.host:h1', 'create doctor.host:h2', 'delete doctor.host:h1']);
    // Same again: no change, no event, still acknowledged.
    expect((await t.post({ type: 'doctor.host', id: 'h2', state: 'UP' }, { headers: auth })).body).toMatchObject({ applied: 1 });
    expect(t.events).toHaveLength(3);
  });

  it('refuses a malformed post whole, naming the event and the field; nothing of it is applied', async () => {
    const t = await start();
    const bad = await t.post(
      [
        { type: 'doctor.host', id: 'ok-1', state: 'up' },
        { type: 'doctor.host', id: 'bad', state: 42 },
      ],
      { headers: auth },
    );
    expect(bad.status).toBe(422);
    expect(bad.body.error).toBe('[1].state: expected a non-empty string, got 42');
    expect((await t.post({ type: 'doctor.host', id: 'x', state: 'up', colour: 'red' }, { headers: auth })).body.error).toMatch(/^colour: is not an event field/);
    expect((await t.post([{ type: 'doctor.host', id: 'x', state: 'up', parents: [{ type: 'nova.host' }] }], { headers: auth })).body.error).toMatch(/^\[0\]\.parents\[0\]: expected \{type, id\}/);
    expect((await t.post([{ type: 'doctor.host', id: 'x', state: 'up', action: 'remove' }], { headers: auth })).body.error).toMatch(/^\[0\]\.action: expected upsert or delete/);

    const notJson = await t.post('{"type": "doctor.host",', { headers: auth });
    expect(notJson.status).toBe(400);
    expect(notJson.body.error).toMatch(/^body is not JSON/);
    const badLine = await t.post('{"type":"a","id":"1","state":"up"}\nnope', { headers: { ...auth, 'content-type': 'application/x-ndjson' } });
    expect(badLine.status).toBe(400);
    expect(badLine.body.error).toMatch(/^line 2 is not JSON/);
    const lineField = await t.post('{"type":"a","id":"1","state":"up"}\n{"type":"a","id":""}', { headers: { ...auth, 'content-type': 'application/x-ndjson' } });
    expect(lineField.body.error).toBe('line 2: id: expected a non-empty string, got ""');
    expect(t.events).toHaveLength(0);
  });

  it('refuses an oversized body with 413 and an unknown content type with 415', async () => {
    const t = await start({ maxBodyBytes: 1024 });
    const big = [{ type: 'doctor.host', id: 'h', state: 'up', attributes: { pad: 'x'.repeat(2000) } }];
    const res = await t.post(big, { headers: auth });
    expect(res.status).toBe(413);
    expect(res.body.error).toMatch(/larger than maxBodyBytes \(1024\)/);
    const xml = await t.post('<event/>', { headers: { ...auth, 'content-type': 'application/xml' } });
    expect(xml.status).toBe(415);
    expect(t.events).toHaveLength(0);
    // The listener goes on.
    expect((await t.post({ type: 'doctor.host', id: 'h', state: 'up' }, { headers: auth })).status).toBe(200);
  });

  it('refuses posts without the token (401 with a challenge), other paths (404) and methods (405)', async () => {
    const t = await start();
    const none = await t.post({ type: 'doctor.host', id: 'h', state: 'up' });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    expect((await t.post({ type: 'doctor.host', id: 'h', state: 'up' }, { headers: { authorization: 'Bearer wrong-token-1' } })).status).toBe(401);
    expect((await t.post({ type: 'doctor.host', id: 'h', state: 'up' }, { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } })).status).toBe(401);
    expect((await t.post({}, { headers: auth, path: '/other' })).status).toBe(404);
    const get = await fetch(t.url, { headers: auth });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(t.events).toHaveLength(0);
  });

  it('takes basic auth instead of a token', async () => {
    const t = await startPushSource('events', '/events', { username: 'doctor', password: 'pw-1' });
    target = t;
    expect((await t.post({ type: 'doctor.host', id: 'h', state: 'up' })).status).toBe(401);
    const ok = await t.post({ type: 'doctor.host', id: 'h', state: 'up' }, { headers: { authorization: `Basic ${Buffer.from('doctor:pw-1').toString('base64')}` } });
    expect(ok.status).toBe(200);
  });

  it('only takes the configured types', async () => {
    const t = await start({ types: ['doctor.host'] });
    const res = await t.post([{ type: 'nova.instance', id: 'i', state: 'ACTIVE' }], { headers: auth });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatch(/^\[0\]\.type: "nova.instance" is not one of the types this endpoint takes \(doctor.host\)/);
  });

  it('stops listening when the synchronizer stops', async () => {
    const t = await start();
    t.stop();
    await expect(t.post({ type: 'doctor.host', id: 'h', state: 'up' }, { headers: auth })).rejects.toThrow();
  });

  it('refuses a config without credentials or with a bad listen address, naming the field', async () => {
    await expect(createSource({ name: 'ev', use: 'events', listen: '127.0.0.1:9999' })).rejects.toThrow(new ConfigError('sources[0].token', 'is required: the events endpoint takes a bearer token (token or tokenEnv), or basic auth (username, password)'));
    await expect(createSource({ name: 'ev', use: 'events', listen: 'localhost', token: 't' })).rejects.toThrow(/sources\[0\]\.listen: expected host:port/);
    await expect(createSource({ name: 'ev', use: 'events', listen: '127.0.0.1:1', tokenEnv: 'SYNC_TEST_NOT_SET_ANYWHERE' })).rejects.toThrow(/sources\[0\]\.tokenEnv: the environment variable SYNC_TEST_NOT_SET_ANYWHERE is not set/);
    await expect(createSource({ name: 'ev', use: 'events', listen: '127.0.0.1:1', token: 't', maxBodyBytes: 0 })).rejects.toThrow(/sources\[0\]\.maxBodyBytes: expected at least 1/);
  });
});
