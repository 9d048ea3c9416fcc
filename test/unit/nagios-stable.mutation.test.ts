import { describe, expect, it } from 'vitest';
import { stableRecords } from '../../sources/nagios.js';
import type { NagiosStatus } from '../../sources/nagios/status.js';

/**
 * `stableRecords`, the nagios source's memory of what each check said when it entered its state
 * (`output: stable`), record by record: which check a record is, what counts as its state, what
 * the record says of the newest output. Written to kill mutants (docs/testing.md, "Mutation
 * testing"); nagios.test.ts checks the same through the source and a real HTTP server.
 */

const host = (name: string, state: 'UP' | 'DOWN', output: string, extra: Partial<NagiosStatus> = {}): NagiosStatus => ({ kind: 'host', host: name, state, stateType: 'HARD', output, ...extra }) as NagiosStatus;
const service = (hostName: string, name: string, state: 'OK' | 'CRITICAL', output: string, extra: Partial<NagiosStatus> = {}): NagiosStatus =>
  ({ kind: 'service', host: hostName, service: name, state, stateType: 'HARD', output, ...extra }) as NagiosStatus;

describe('stableRecords', () => {
  it('keeps each check apart: hosts by name, a host and its service, services of two hosts', () => {
    const settle = stableRecords(true);
    settle([host('a', 'UP', 'a1'), host('b', 'DOWN', 'b1'), service('a', 'http', 'OK', 's1'), service('b', 'http', 'CRITICAL', 't1')]);
    // Each stays in its state: each keeps its own first output, and says the newest beside it.
    expect(settle([host('a', 'UP', 'a2'), host('b', 'DOWN', 'b2'), service('a', 'http', 'OK', 's2'), service('b', 'http', 'CRITICAL', 't2')])).toStrictEqual([
      host('a', 'UP', 'a1', { latestOutput: 'a2' }),
      host('b', 'DOWN', 'b1', { latestOutput: 'b2' }),
      service('a', 'http', 'OK', 's1', { latestOutput: 's2' }),
      service('b', 'http', 'CRITICAL', 't1', { latestOutput: 't2' }),
    ]);
  });

  it('counts SOFT to HARD in the same state as a change: the new output, no latestOutput', () => {
    const settle = stableRecords(true);
    settle([host('a', 'DOWN', 'soft', { stateType: 'SOFT' })]);
    expect(settle([host('a', 'DOWN', 'hard', { stateType: 'HARD' })])).toStrictEqual([host('a', 'DOWN', 'hard', { stateType: 'HARD' })]);
    // A record without a state type (status.cgi's pages) compares by its state alone.
    const page = stableRecords(true);
    page([host('a', 'UP', 'first', { stateType: undefined })]);
    expect(page([host('a', 'UP', 'second', { stateType: undefined })])).toStrictEqual([host('a', 'UP', 'first', { stateType: undefined, latestOutput: 'second' })]);
  });

  it('hands back a record that says what it said, without a latestOutput or a lastStateChange it did not have', () => {
    const settle = stableRecords(true);
    settle([host('a', 'UP', 'same')]);
    const again = host('a', 'UP', 'same');
    expect(settle([again])[0]).toStrictEqual(host('a', 'UP', 'same'));
    // With `output: latest` (keepOutput false) the output passes; a last_state_change filled in
    // while the state stayed is still left out, and no key of it remains.
    const latest = stableRecords(false);
    latest([host('a', 'UP', 'one')]);
    expect(latest([host('a', 'UP', 'two', { lastStateChange: '2026-11-25T12:00:00.000Z' })])).toStrictEqual([host('a', 'UP', 'two')]);
  });
});
