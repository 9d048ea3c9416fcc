#!/usr/bin/env node
/**
 * `node scripts/cpuprofile-stages.mjs FILE.cpuprofile MESSAGES`: where the notification path's
 * time goes, stage by stage. Each busy sample counts for the first stage below (in this order)
 * whose frame is anywhere on its stack, so a stage holds what it calls (the baseline step holds
 * the Immutable map's work; "operator hops" only what no later stage claims). Prints each stage's
 * milliseconds and microseconds per message. Written for the isolation benchmark's
 * ISOLATION_BENCH_PROFILE_IDLE (the idle window: the notification path alone) and the amqp
 * benchmark's AMQP_BENCH_PROFILE (docs/scale.md, "The notification path's cost").
 */
import { readFileSync } from 'node:fs';

const [file, messagesArg] = process.argv.slice(2);
if (!file || !messagesArg) throw new Error('usage: cpuprofile-stages.mjs FILE.cpuprofile MESSAGES');
const messages = Number(messagesArg);
const profile = JSON.parse(readFileSync(file, 'utf8'));

const STAGES = [
  ['decode (the envelope and the message: 2× JSON.parse, timestamp)', /^decodeNotification /],
  ['acks (encode, socket write)', /^roundrobin node_modules\/amqplib\/lib\/mux|^writeBuffer|^writev|^flush dist\/src\/amqp|^enqueue node_modules\/amqplib\/lib\/mux|^_readIncoming /],
  ['baseline step (applyObservation)', /^applyObservation /],
  ['hub after the step (deliver, commit line, entity$, settle)', /^deliver dist\/src\/synchronizer/],
  ['operator hops from normalize to the step', /^emit dist\/operators\/normalizeEntity/],
  ['normalize (mapping, toEntity)', /^one dist\/operators\/normalizeEntity/],
  ['source and operator hops to normalize', /^channel\.consume\.noAck /],
  ['amqplib: socket read, frame parse, dispatch', /^go node_modules\/amqplib|^recvFrame |^onStreamRead |^Readable\.read /],
  ['(garbage collector)', /^\(garbage collector\)/],
  ['(program)', /^\(program\)/],
];

const byId = new Map();
const parent = new Map();
for (const n of profile.nodes) {
  byId.set(n.id, n);
  for (const c of n.children ?? []) parent.set(c, n.id);
}
const label = (f) => `${f.functionName || '(anon)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}`;
const spent = new Map();
let busy = 0;
let all = 0;
for (let i = 0; i < profile.samples.length; i++) {
  const ms = (profile.timeDeltas[i + 1] ?? 0) / 1000;
  all += ms;
  const id = profile.samples[i];
  if (byId.get(id).callFrame.functionName === '(idle)') continue;
  busy += ms;
  const stack = [];
  for (let at = id; at !== undefined; at = parent.get(at)) stack.push(label(byId.get(at).callFrame));
  const stage = STAGES.find(([, re]) => stack.some((l) => re.test(l)))?.[0] ?? 'other';
  spent.set(stage, (spent.get(stage) ?? 0) + ms);
}
console.log(`window ${all.toFixed(0)} ms, busy ${busy.toFixed(0)} ms; ${messages} messages: ${((busy * 1000) / messages).toFixed(0)} µs busy per message`);
for (const [stage, ms] of [...spent].sort((a, b) => b[1] - a[1])) {
  console.log(`${ms.toFixed(0).padStart(7)} ms ${((ms * 1000) / messages).toFixed(1).padStart(7)} µs  ${stage}`);
}
