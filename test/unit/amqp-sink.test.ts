import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config.js';

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
});
