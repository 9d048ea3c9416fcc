export { normalizeEntity, toEntity, toPatch, type InvalidRecord, type NormalizeOptions, type SliceOptions } from './normalizeEntity.js';
export {
  diffAgainstBaseline,
  baselineSteps,
  applyObservation,
  prepareSnapshot,
  indexedBaseline,
  emptyBaseline,
  DEFAULT_TOMBSTONE_MS,
  DEFAULT_MAX_CLOCK_SKEW_MS,
  type BaselineEntry,
  type BaselineState,
  type BaselineStep,
  type DiffOptions,
  type PrepareOptions,
} from './diffAgainstBaseline.js';
export { ofType, typeMatcher } from './ofType.js';
export { ofAction } from './ofAction.js';
