import { createServer } from 'node:net';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; closed again before
 * returning). Another process may take it before the caller binds it: for a service that cannot
 * bind port 0 and report what it got, start it with {@link onFreePort}, which retries on a clash.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Thrown by a start function when its service could not bind its port (someone took it first). */
export class AddressInUse extends Error {
  constructor(what: string, port: number, detail: string) {
    super(`${what}: 127.0.0.1:${port} was taken before it could bind it: ${detail}`);
    this.name = 'AddressInUse';
  }
}

/** True when a service's own output says its port was taken (Go, Apache, Erlang, Node spell it differently). */
export function saysAddressInUse(output: string): boolean {
  return /address already in use|eaddrinuse|could not bind/i.test(output);
}

/**
 * Starts a service on `count` freshly picked ports, and again on new ones when it reports
 * AddressInUse (the race between picking a free port and the service binding it).
 */
export async function onFreePort<T>(start: (...ports: number[]) => Promise<T>, count = 1, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    try {
      return await start(...ports);
    } catch (e) {
      if (!(e instanceof AddressInUse) || attempt >= attempts) throw e;
    }
  }
}

/**
 * A free port between `min` and `max` on 127.0.0.1, for programs that refuse the OS's ephemeral
 * range (zabbix_server's ListenPort stops at 32767). Random start, so parallel runs rarely collide.
 */
export async function freePortIn(min: number, max: number): Promise<number> {
  const span = max - min + 1;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < 200; i++) {
    const port = min + ((start + i * 7919) % span);
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error(`no free port between ${min} and ${max}`);
}
