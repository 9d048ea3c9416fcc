/**
 * `webhook` benchmark: Alertmanager-style webhook posts (version 4, 100 alerts each) to a
 * `use: alertmanager.webhook` source on loopback, through the whole pipeline (parse → changes →
 * normalizeEntity → baseline → entity$ → settle → 200).
 *
 * 1. `paced`: posts at 1,000 alerts/s (10 posts/s) for WEBHOOK_BENCH_SECONDS (default 10); each
 *    post's time from the start of its request to the emission of its last alert on entity$
 *    (post-to-emit), p50 and p99, and to its answer.
 * 2. `max`: the same posts back to back from 4 concurrent clients; alerts/s through the pipeline.
 *
 * Every alert of every post is a change (its annotation moves), so each one is an event. Target:
 * p99 post-to-emit < 10 ms at 1,000 alerts/s.
 */
import { performance } from 'node:perf_hooks';
import { asyncScheduler } from 'rxjs';
import webhookSource from '../../sources/alertmanager-webhook.js';
import { createLogger } from '../../src/log.js';
import { OptionReader } from '../../src/options.js';
import type { Source } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { freePort } from '../support/ports.js';
import { sleep, waitFor } from '../support/wait.js';
import type { Bench, BenchRow } from './run.js';

const ALERTS_PER_POST = 100;
const RATE = 1_000;
const SECONDS = Number(process.env.WEBHOOK_BENCH_SECONDS ?? 10);
const MAX_POSTS = Number(process.env.WEBHOOK_BENCH_MAX_POSTS ?? 500);
const FINGERPRINTS = 10_000;

function body(post: number): string {
  const alerts = [];
  for (let i = 0; i < ALERTS_PER_POST; i++) {
    const n = (post * ALERTS_PER_POST + i) % FINGERPRINTS;
    alerts.push({
      status: 'firing',
      labels: { alertname: 'HighLoad', instance: `compute-${n}:9100`, job: 'node', severity: n % 7 === 0 ? 'critical' : 'warning' },
      annotations: { summary: `load is high on compute-${n}`, description: `post ${post}` },
      startsAt: '2026-11-30T02:52:45.177Z',
      endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'http://prometheus:9090/graph',
      fingerprint: n.toString(16).padStart(16, '0'),
    });
  }
  return JSON.stringify({ receiver: 'sync', status: 'firing', alerts, groupLabels: { alertname: 'HighLoad' }, commonLabels: { alertname: 'HighLoad' }, commonAnnotations: {}, externalURL: 'http://alertmanager:9093', version: '4', groupKey: '{}:{alertname="HighLoad"}', truncatedAlerts: 0 });
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

const bench: Bench = {
  name: 'webhook',
  title: `Alertmanager webhook posts of ${ALERTS_PER_POST} alerts through the pipeline (post-to-emit; target p99 < 10 ms at ${RATE} alerts/s)`,
  async run(): Promise<BenchRow[]> {
    const port = await freePort();
    const token = 'bench-token';
    const options = webhookSource.options(new OptionReader({ listen: `127.0.0.1:${port}`, token }, 'bench'));
    const source = webhookSource.create(options, { name: 'hook', scheduler: asyncScheduler, log: createLogger('warn'), configDir: process.cwd() });
    const sync = createSynchronizer({ sources: [source as Source<unknown>] });
    // Emission time of the last alert of each post (its description names the post).
    const emitted = new Map<number, number>();
    let events = 0;
    sync.entity$.subscribe((e) => {
      events += 1;
      const a = e.entity.attributes.annotations as { description: string };
      emitted.set(Number(a.description.slice(5)), performance.now());
    });
    sync.start();
    await waitFor('the webhook to listen', () => sync.health().hook?.status === 'up');
    const url = `http://127.0.0.1:${port}/alertmanager`;
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    const send = async (post: number, text: string): Promise<{ emitMs: number; answerMs: number }> => {
      const start = performance.now();
      const res = await fetch(url, { method: 'POST', headers, body: text });
      await res.arrayBuffer();
      const end = performance.now();
      if (res.status !== 200) throw new Error(`post ${post}: ${res.status}`);
      return { emitMs: emitted.get(post)! - start, answerMs: end - start };
    };
    const rows: BenchRow[] = [];
    try {
      // Warm-up (JIT, first creates), not measured.
      let post = 0;
      for (; post < 20; post++) await send(post, body(post));

      const posts = Math.round((SECONDS * RATE) / ALERTS_PER_POST);
      const bodies = Array.from({ length: posts }, (_, i) => body(post + i));
      const emit: number[] = [];
      const answer: number[] = [];
      const started = performance.now();
      const inflight: Promise<void>[] = [];
      for (let i = 0; i < posts; i++) {
        const due = started + (i * 1000 * ALERTS_PER_POST) / RATE;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        const n = post + i;
        inflight.push(send(n, bodies[i]!).then((t) => void (emit.push(t.emitMs), answer.push(t.answerMs))));
      }
      await Promise.all(inflight);
      const seconds = (performance.now() - started) / 1000;
      post += posts;
      emit.sort((a, b) => a - b);
      answer.sort((a, b) => a - b);
      rows.push({
        bench: 'webhook',
        mode: 'paced',
        n: posts * ALERTS_PER_POST,
        alertsPerSec: Math.round((posts * ALERTS_PER_POST) / seconds),
        p50Ms: percentile(emit, 50),
        p99Ms: percentile(emit, 99),
        answerP99Ms: percentile(answer, 99),
      });

      const maxBodies = Array.from({ length: MAX_POSTS }, (_, i) => body(post + i));
      const before = events;
      const t0 = performance.now();
      let next = 0;
      const client = async (): Promise<void> => {
        while (next < MAX_POSTS) {
          const i = next++;
          await send(post + i, maxBodies[i]!);
        }
      };
      await Promise.all([client(), client(), client(), client()]);
      const maxSeconds = (performance.now() - t0) / 1000;
      rows.push({ bench: 'webhook', mode: 'max', n: MAX_POSTS * ALERTS_PER_POST, alertsPerSec: Math.round((events - before) / maxSeconds) });
    } finally {
      sync.stop();
    }
    return rows;
  },
};

export default bench;
