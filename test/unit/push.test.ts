import type { Subscription } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import { type ChangeObservation, type PushOptions, PushRefusal, type SourceSignal, pushReceiver$, receivedNow, silentLogger } from '../../src/index.js';
import { freePort } from '../support/ports.js';
import { waitFor } from '../support/wait.js';

type Rec = { n: number };
let subscription: Subscription | undefined;
afterEach(() => subscription?.unsubscribe());

/** The receiver alone, with the test playing the pipeline: it decides when and how each change settles. */
async function receiver(extra: Partial<PushOptions> = {}): Promise<{ url: string; changes: ChangeObservation<Rec>[]; signals: SourceSignal<Rec>[] }> {
  const port = await freePort();
  const options: PushOptions = { host: '127.0.0.1', port, path: '/p', auth: { kind: 'none' }, maxBodyBytes: 10_000, settleTimeoutMs: 30_000, ...extra };
  const parse = (doc: unknown): { action: 'upsert'; record: Rec }[] => {
    if (!Array.isArray(doc)) throw new PushRefusal('', 'expected a list');
    return doc.map((n) => ({ action: 'upsert' as const, record: { n: Number(n) } }));
  };
  const changes: ChangeObservation<Rec>[] = [];
  const signals: SourceSignal<Rec>[] = [];
  subscription = pushReceiver$<Rec>(options, { name: 'p', log: silentLogger }, parse).subscribe((s) => {
    signals.push(s);
    if (s.kind === 'change') changes.push(s);
  });
  await waitFor('listening', () => signals.some((s) => s.kind === 'health' && s.status === 'up'));
  return { url: `http://127.0.0.1:${port}/p`, changes, signals };
}

const post = async (url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('pushReceiver$ (the HTTP push transport)', () => {
  it('answers only after every change of the post settled', async () => {
    const r = await receiver();
    let answered = false;
    const answer = post(r.url, [1, 2]).then((res) => ((answered = true), res));
    await waitFor('both changes', () => r.changes.length === 2);
    expect(r.changes.map((c) => c.record)).toEqual([{ n: 1 }, { n: 2 }]);
    r.changes[0]!.settle!({ ok: true });
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(answered).toBe(false); // one still in the pipeline
    r.changes[1]!.settle!({ ok: true });
    expect(await answer).toEqual({ status: 200, body: { applied: 2, results: [{ index: 0, action: 'upsert' }, { index: 1, action: 'upsert' }] } });
  });

  it('answers 422 listing the records the pipeline refused, the others applied', async () => {
    const r = await receiver();
    const answer = post(r.url, [1, 2]);
    await waitFor('both changes', () => r.changes.length === 2);
    r.changes[0]!.settle!({ ok: false, reason: 'state is missing' });
    r.changes[1]!.settle!({ ok: true });
    const res = await answer;
    expect(res.status).toBe(422);
    expect(res.body).toMatchObject({ applied: 1, results: [{ index: 0, refused: 'state is missing' }, { index: 1 }] });
  });

  it('answers 503 when the pipeline does not settle in time, and when it stops', async () => {
    const r = await receiver({ settleTimeoutMs: 200 });
    const res = await post(r.url, [1]);
    expect(res.status).toBe(503);
    expect(res.body.error).toMatch(/1 of 1 changes did not go through the pipeline in time/);
    const waiting = post(r.url, [2]);
    await waitFor('the change', () => r.changes.length === 2);
    subscription!.unsubscribe();
    expect((await waiting).status).toBe(503);
  });

  it('stamps changes with the receive time and refuses a document the parser refuses, emitting nothing', async () => {
    const r = await receiver();
    const before = Date.now();
    const bad = await post(r.url, { not: 'a list' });
    expect(bad).toEqual({ status: 422, body: { error: 'expected a list' } });
    expect(r.changes).toHaveLength(0);
    const sent = receivedNow();
    const answer = post(r.url, [3]);
    await waitFor('the change', () => r.changes.length === 1);
    expect(Date.parse(r.changes[0]!.at)).toBeGreaterThanOrEqual(before - 5);
    // When its body was in, on the clock the synchronizer's own delay is measured with.
    expect(r.changes[0]!.receivedAt).toBeGreaterThanOrEqual(sent);
    expect(r.changes[0]!.receivedAt).toBeLessThanOrEqual(receivedNow());
    r.changes[0]!.settle!({ ok: true });
    expect((await answer).status).toBe(200);
  });

  it('errors the stream naming the address when it cannot listen', async () => {
    const r = await receiver();
    const port = Number(new URL(r.url).port);
    const errors: string[] = [];
    const second = pushReceiver$({ host: '127.0.0.1', port, path: '/p', auth: { kind: 'none' }, maxBodyBytes: 10, settleTimeoutMs: 10 }, { name: 'twin', log: silentLogger }, () => []).subscribe({
      error: (e: Error) => errors.push(e.message),
    });
    await waitFor('the error', () => errors.length > 0);
    second.unsubscribe();
    expect(errors[0]).toMatch(new RegExp(`^twin: cannot listen on 127.0.0.1:${port}: .*EADDRINUSE`));
  });
});
