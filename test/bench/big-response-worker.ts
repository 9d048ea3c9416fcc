/**
 * The `poll` benchmark's big single response, served from its own thread (its buffers are not on
 * the heap being weighed, its work not on the event loop being timed): GET /alerts answers
 * Alertmanager's `/api/v2/alerts` with `n` alerts shaped as the recorded one (distinct
 * fingerprints and instances), written in chunks as the socket drains, never held whole.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { fixturePath } from '../support/fixtures.js';

export interface BigResponseWorkerData {
  /** Alerts of one answer. */
  n: number;
}

/** Alerts per written block. */
const BLOCK = 1000;

const { n } = workerData as BigResponseWorkerData;
const [template] = JSON.parse(readFileSync(fixturePath('wire', 'alertmanager-v2-get-alerts.json'), 'utf8')) as Record<string, unknown>[];
const alert = (i: number): string => {
  const labels = { ...(template!.labels as Record<string, string>), instance: `host-${i}:9100` };
  return JSON.stringify({ ...template, fingerprint: i.toString(16).padStart(16, '0'), labels });
};
// One block of BLOCK distinct alerts, repeated: a million distinct ones would cost the server's
// thread more than the client's, and the transport does not look at the values.
const block = Buffer.from(Array.from({ length: BLOCK }, (_, i) => alert(i)).join(','));
const full = Math.floor(n / BLOCK);
const tail = Buffer.from(Array.from({ length: n % BLOCK }, (_, i) => alert(i)).join(','));
const bytes = 2 + full * block.length + Math.max(0, full - 1) + (tail.length > 0 ? tail.length + (full > 0 ? 1 : 0) : 0);

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': bytes });
  let i = 0;
  res.write('[');
  const more = (): void => {
    let ok = true;
    while (ok && i < full) {
      ok = res.write(i === 0 ? block : Buffer.concat([Buffer.from(','), block]));
      i += 1;
    }
    if (i < full) {
      res.once('drain', more);
      return;
    }
    if (tail.length > 0) res.write(full > 0 ? Buffer.concat([Buffer.from(','), tail]) : tail);
    res.end(']');
  };
  more();
});
server.listen(0, '127.0.0.1', () => parentPort!.postMessage({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, bytes }));
parentPort!.on('message', () => server.close(() => process.exit(0)));
