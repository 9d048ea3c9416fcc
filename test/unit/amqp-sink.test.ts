import { Subject } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { parseTransportUrl } from '../../src/amqp.js';
import { parseConfig } from '../../src/config.js';
import { createLogger } from '../../src/log.js';
import type { Entity, EntityDraft } from '../../src/model.js';
import { createAmqpSink } from '../../src/sinks/amqp.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { entity, t, upsert } from '../support/entities.js';
import { freePort } from '../support/ports.js';

const withSink = (sink: Record<string, unknown>) => parseConfig({ sources: [{ name: 'topology', use: 'static', file: './topology.yaml' }], sinks: [{ use: 'stdout' }, { use: 'amqp', ...sink }] }, '/tmp');

describe('use: amqp sink options', () => {
  it('reads the url (failover list, password redacted), the exchange (default synchronizer) and the types', async () => {
    const config = await withSink({ url: 'rabbit://u:secret@h1:5672,u:secret@h2:5673/vh', types: ['nova.*'] });
    expect(config.sinks.map((s) => s.use)).toEqual(['stdout', 'amqp']);
    expect(config.sinks[1]!.options).toMatchObject({
      url: 'rabbit://u:***@h1:5672,u:***@h2:5673/vh',
      exchange: 'synchronizer',
      types: ['nova.*'],
      endpoints: [
        { hostname: 'h1', port: 5672, username: 'u', password: 'secret', vhost: 'vh' },
        { hostname: 'h2', port: 5673, username: 'u', password: 'secret', vhost: 'vh' },
      ],
    });
    expect((await withSink({ url: 'amqp://h/', exchange: 'events.v1' })).sinks[1]!.options).toMatchObject({ exchange: 'events.v1' });
  });

  it('refuses a bad url, a bad exchange, a missing url and unknown keys, naming the field', async () => {
    await expect(withSink({ url: 'http://u:secret@h/' })).rejects.toThrow(/^sinks\[1\]\.url: unsupported scheme "http:"/);
    await expect(withSink({ url: 'amqp://u:secret@h:99999/' })).rejects.toThrow(/^sinks\[1\]\.url: port of host 1 .* out of range/);
    await expect(withSink({ url: 'not a url secret' })).rejects.toThrow(/^sinks\[1\]\.url: expected a transport URL/);
    await expect(withSink({})).rejects.toThrow('sinks[1].url: is required');
    await expect(withSink({ url: 'amqp://h/', exchange: 'amq.topic' })).rejects.toThrow(/^sinks\[1\]\.exchange: expected an exchange name/);
    await expect(withSink({ url: 'amqp://h/', exchange: 'my exchange' })).rejects.toThrow(/^sinks\[1\]\.exchange: expected an exchange name/);
    await expect(withSink({ url: 'amqp://h/', exchange: ['x'] })).rejects.toThrow(/^sinks\[1\]\.exchange: expected a non-empty string/);
    await expect(withSink({ url: 'amqp://h/', exchnage: 'x' })).rejects.toThrow('sinks[1].exchnage: is not a known option here');
    await expect(withSink({ url: 'amqp://h/', types: 'nova.*', reconnectDelay: '5s', maxReconnectDelay: '1s' })).rejects.toThrow(/^sinks\[1\]\.maxReconnectDelay/);
  });

  it('close() with no broker waits its timeout, then says how many messages were left unconfirmed', async () => {
    const url = `amqp://guest:secret@127.0.0.1:${await freePort()}/`; // nothing listens there
    const source$ = new Subject<SourceSignal<Entity>>();
    const source = { name: 'nova', types: ['nova.instance'], signal$: source$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
    const sync = createSynchronizer({ sources: [source] });
    sync.start();
    const logs: string[] = [];
    const sink = createAmqpSink({ url, endpoints: parseTransportUrl(url), exchange: 'x', reconnectMs: 20, maxReconnectMs: 50, closeTimeoutMs: 300 }, createLogger('info', (l) => logs.push(l)));
    const handle = sink.attach(sync);
    for (let i = 0; i < 3; i++) source$.next(upsert(t(i), entity(`vm-${i}`)));
    await new Promise((resolve) => setImmediate(resolve));
    handle.unsubscribe();
    const started = Date.now();
    await sink.close?.();
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    sync.stop();
    const closed = logs.find((l) => l.includes('closed with unconfirmed'));
    expect(closed && JSON.parse(closed)).toMatchObject({ level: 'warn', unconfirmed: 4 }); // synced + 3 events
    expect(logs.some((l) => l.includes('broker unavailable') && l.includes('ECONNREFUSED'))).toBe(true);
    expect(logs.join('')).not.toContain('secret');
  });

  it('never holds up the pipeline while the broker is down: a full window makes the hub resynchronise the sink', async () => {
    const url = `amqp://guest:guest@127.0.0.1:${await freePort()}/`;
    const source$ = new Subject<SourceSignal<Entity>>();
    const source = { name: 'nova', types: ['nova.instance'], signal$: source$, map: (r: unknown) => r as EntityDraft } as Source<unknown>;
    const sync = createSynchronizer({ sources: [source], bufferSize: 5 });
    const events: string[] = [];
    sync.entity$.subscribe((e) => events.push(e.entity.id));
    sync.start();
    const sink = createAmqpSink({ url, endpoints: parseTransportUrl(url), exchange: 'x', reconnectMs: 20, maxReconnectMs: 50, window: 3, closeTimeoutMs: 0 }, createLogger('silent'));
    const handle = sink.attach(sync);
    for (let i = 0; i < 20; i++) {
      source$.next(upsert(t(i), entity(`vm-${i}`)));
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(events).toHaveLength(20);
    expect(sync.metrics().resyncs).toBeGreaterThan(0);
    handle.unsubscribe();
    await sink.close?.();
    sync.stop();
  });
});
