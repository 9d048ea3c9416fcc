import { describe, expect, it } from 'vitest';
import { pauseForIo } from '../../src/pause.js';

describe('pauseForIo', () => {
  it('lets one waiting slice go on per turn of the event loop, in the order they paused', async () => {
    // A ticker counts the turns (an immediate that queues itself again); three slices pause at
    // once, as a page reader, a normalization and a preparation do, and each pauses again after
    // its slice. Each turn may hold one of them, never two.
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const ran: { slice: string; turn: number }[] = [];
    const slicer = async (name: string): Promise<void> => {
      for (let i = 0; i < 3; i++) {
        await pauseForIo();
        ran.push({ slice: name, turn });
      }
    };
    await Promise.all([slicer('read'), slicer('normalize'), slicer('prepare')]);
    ticking = false;
    expect(ran.map((r) => r.slice)).toEqual(['read', 'normalize', 'prepare', 'read', 'normalize', 'prepare', 'read', 'normalize', 'prepare']);
    const turns = ran.map((r) => r.turn);
    expect(new Set(turns).size, `turns of the slices: ${turns.join(' ')}`).toBe(turns.length);
  });

  it('resolves at once in the next turn when nothing else waits', async () => {
    let other = false;
    setImmediate(() => (other = true));
    await pauseForIo();
    // The immediate queued before it ran first: I/O and immediates pending when it paused go first.
    expect(other).toBe(true);
  });
});
