/**
 * Child process of the `persist` benchmark: takes a first snapshot of N Nova servers into the
 * state store in the folder argv[2] and dies by SIGKILL as soon as it is settled (persisted: its
 * log segment flushed), before the fold worker can have put it in baseline.mdb. The benchmark then
 * times the load of that folder: a crash right after a 100,000-entity first snapshot, everything
 * still in the log.
 */
import { Observable } from 'rxjs';
import { serverDraft } from '../../sources/openstack/nova.js';
import type { SnapshotObservation } from '../../src/model.js';
import type { Source, SourceSignal } from '../../src/source.js';
import { createSynchronizer } from '../../src/synchronizer.js';
import { type Server, makeServers } from './diff.js';

const [dir, n] = [process.argv[2]!, Number(process.argv[3])];
const snapshot: SnapshotObservation<Server> = {
  kind: 'snapshot',
  source: 'nova',
  types: ['nova.instance'],
  at: '2026-11-25T12:00:00Z',
  records: makeServers(n),
  settle: () => process.kill(process.pid, 'SIGKILL'),
};
const signal$ = new Observable<SourceSignal<Server>>((subscriber) => subscriber.next(snapshot));
const source = { name: 'nova', types: ['nova.instance'], signal$, map: serverDraft } as Source<unknown>;
createSynchronizer({ sources: [source], state: { dir } }).start();
