// The library in a few lines: run with `node docs/examples/library.mjs` after `npm run build`.
// It watches the demo topology, prints every event, and shows the three ways to consume.
import { fileURLToPath } from 'node:url';
import { createSource, createSynchronizer, ofAction, ofType } from 'synchronizer';

const topology = await createSource(
  { name: 'topology', use: 'static', file: 'demo-topology.yaml' },
  { configDir: fileURLToPath(new URL('.', import.meta.url)) },
);
const sync = createSynchronizer({ sources: [topology] });

// 1. entity$: every event once, in order, filtered with composable operators.
sync.entity$.pipe(ofType('nova.instance'), ofAction('create')).subscribe((e) => console.log('instance', e.entity.name, e.entity.state));

// 2. register(): a callback that runs asynchronously, one item at a time; it can be slow or
//    throw without blocking anyone. It first gets the current state, then `synced`, then changes.
const hosts = sync.register(['nova.host'], async (item) => {
  if (item.kind === 'replay' || item.kind === 'event') console.log('host item', item.kind);
  if (item.kind === 'synced') console.log('hosts synced:', item.count);
});

sync.start();
await new Promise((resolve) => setTimeout(resolve, 500));

// 3. snapshot(): every current entity of some types.
console.log('volumes:', sync.snapshot(['cinder.volume']).map((v) => `${v.name} → ${v.parents[0]?.id}`));

hosts.unsubscribe();
sync.stop();
