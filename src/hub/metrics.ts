import type { BaselineState } from '../../operators/diffAgainstBaseline.js';
import type { EntityAction } from '../model.js';
import type { SynchronizerMetrics } from './types.js';

/** The hub's counters; the gauges (entities, tombstones) are read from the baseline when asked. */
export interface HubCounters {
  events: Record<EntityAction, number>;
  observations: Record<string, number>;
  invalidRecords: Record<string, number>;
  resyncs: number;
  callbackErrors: number;
  clockSkewCorrections: number;
  /** Events queued in `register` consumers, not yet handed to their callbacks. */
  backlog: number;
}

export function createCounters(): HubCounters {
  return { events: { create: 0, update: 0, delete: 0 }, observations: {}, invalidRecords: {}, resyncs: 0, callbackErrors: 0, clockSkewCorrections: 0, backlog: 0 };
}

/** A copy of the counters with the baseline's gauges: callers may keep it, the hub goes on counting. */
export function metricsOf(counters: HubCounters, state: BaselineState, pipelineError?: string): SynchronizerMetrics {
  return {
    ...counters,
    events: { ...counters.events },
    observations: { ...counters.observations },
    invalidRecords: { ...counters.invalidRecords },
    entities: state.entities.size,
    tombstones: state.tombstones.size,
    ...(pipelineError === undefined ? {} : { pipelineError }),
  };
}
