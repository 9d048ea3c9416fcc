/**
 * Hostile input is read in time linear in its size: status.cgi tag soup and a real page repeated,
 * at 1× and 4× size. `ratio` is the time at 4× over the time at 1× (linear ≈ 4, quadratic ≈ 16).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStatusPage } from '../../sources/nagios/status.js';
import { FIXTURES } from '../support/fixtures.js';
import type { Bench, BenchRow } from './run.js';

function timeMs(run: () => void, rounds = 5): number {
  const times: number[] = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = process.hrtime.bigint();
    run();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times.sort((a, b) => a - b)[Math.floor(rounds / 2)]!;
}

const parse = (html: string) => (): void => {
  try {
    parseStatusPage(html, 'services', 'bench');
  } catch {
    // refused pages are the point
  }
};

const bench: Bench = {
  name: 'hostile',
  title: 'status.cgi parse time at 1× and 4× page size (median of 5; linear ≈ ratio 4)',
  async run(): Promise<BenchRow[]> {
    const real = readFileSync(join(FIXTURES, 'wire', 'nagios-status.cgi-host-all-style-detail.html'), 'utf8');
    const cases: [string, (n: number) => string][] = [
      ['unclosed <td', (n) => `<html>status${'<td '.repeat(n)}`],
      ['unclosed <', (n) => `<html>status<td>${'<'.repeat(n * 4)}</td>`],
      ['link cells, no state', (n) => `<html>status${'<td><a href="extinfo.cgi?type=2&host=h&service=s">s</a></td>'.repeat(n / 20)}`],
      ['real page repeated', (n) => real.repeat(Math.max(1, Math.round(n / 2000)))],
    ];
    const rows: BenchRow[] = [];
    for (const [input, make] of cases) {
      const small = make(200_000);
      const large = make(800_000);
      const a = timeMs(parse(small));
      const b = timeMs(parse(large));
      rows.push({ bench: 'hostile', input, kb: Math.round(small.length / 1024), ms: a, kb4: Math.round(large.length / 1024), ms4: b, ratio: b / Math.max(a, 0.001) });
    }
    return rows;
  },
};
export default bench;
