/**
 * What a streamed read of a document at a path must give, computed the plain way: JSON.parse the
 * whole text, then walk it. The reference the streaming reader (src/jsonStream.ts) is checked
 * against, written without its code.
 */
import type { SelectKey } from '../../src/jsonStream.js';

export interface Expected {
  elements: [SelectKey[], unknown][];
  rest: unknown;
}

type Step = 'item' | 'member' | { name: string };

function stepsOf(select: string): Step[] {
  const steps: Step[] = [];
  for (const part of select.replace(/\[\*\]/g, '.[*]').split('.')) {
    if (part === '') continue;
    steps.push(part === '[*]' ? 'item' : part === '*' ? 'member' : { name: part });
  }
  return steps;
}

const isMapping = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** The container kind a step is taken in: a list for `[*]`, a mapping otherwise. */
const fits = (step: Step, v: unknown): boolean => (step === 'item' ? Array.isArray(v) : isMapping(v));

export function expectedSelection(text: string, select: string): Expected {
  const steps = stepsOf(select);
  const elements: [SelectKey[], unknown][] = [];
  const walk = (value: unknown, level: number, keys: SelectKey[]): unknown => {
    const step = steps[level]!;
    const last = level === steps.length - 1;
    const child = (v: unknown, key: SelectKey, wild: boolean): { keep: boolean; value: unknown } => {
      const at = wild ? [...keys, key] : keys;
      if (last) {
        elements.push([at, v]);
        return { keep: false, value: undefined };
      }
      return { keep: true, value: fits(steps[level + 1]!, v) ? walk(v, level + 1, at) : v };
    };
    if (step === 'item') {
      const out: unknown[] = [];
      (value as unknown[]).forEach((v, i) => {
        const c = child(v, i, true);
        if (c.keep) out.push(c.value);
      });
      return out;
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const onPath = step === 'member' || step.name === k;
      const c = onPath ? child(v, k, step === 'member') : { keep: true, value: v };
      if (c.keep) Object.defineProperty(out, k, { value: c.value, enumerable: true, writable: true, configurable: true });
    }
    return out;
  };
  const doc: unknown = JSON.parse(text);
  const rest = fits(steps[0]!, doc) ? walk(doc, 0, []) : doc;
  return { elements, rest };
}

/** Elements in a comparable order: a mapping's members come in document order from the stream, JSON.parse's objects put integer keys first. */
export function byKeys(elements: [SelectKey[], unknown][]): [SelectKey[], unknown][] {
  return [...elements].sort((a, b) => (JSON.stringify(a[0]) < JSON.stringify(b[0]) ? -1 : JSON.stringify(a[0]) > JSON.stringify(b[0]) ? 1 : 0));
}

/** Real answers and where their records are (what the sources select). */
export const WIRE: readonly [string[], string][] = [
  [['wire', 'alertmanager-v2-get-alerts.json'], '[*]'],
  [['wire', 'alertmanager-v2-get-alerts-groups.json'], '[*]'],
  [['wire', 'prometheus', 'alertmanager-v2-alerts-from-prometheus.json'], '[*]'],
  [['wire', 'prometheus', 'targets.json'], 'data.activeTargets[*]'],
  [['wire', 'prometheus', 'targets-state-active.json'], 'data.activeTargets[*]'],
  [['wire', 'prometheus', 'alerts-firing-and-pending.json'], 'data.alerts[*]'],
  [['wire', 'prometheus', 'alerts-none.json'], 'data.alerts[*]'],
  [['wire', 'nagios-statusjson-hostlist-details.json'], 'data.hostlist.*'],
  [['wire', 'nagios-statusjson-servicelist-details.json'], 'data.servicelist.*.*'],
  [['wire', 'nagios-statusjson-servicelist-details-enumerate.json'], 'data.servicelist.*.*'],
  [['wire', 'nagios-statusjson-servicelist.json'], 'data.servicelist.*.*'],
  // A path that does not fit the answer: everything stays in the rest.
  [['wire', 'alertmanager-v2-get-alerts.json'], 'data.alerts[*]'],
  [['wire', 'nagios-statusjson-hostlist-details.json'], '[*]'],
];
