/**
 * Declarative picks: what a source reads of an API record, as data. A shape can cross to the
 * thread that parses a streamed body (src/parseOffThread.ts), where a function could not, so the
 * record is cut down before it is copied back; the same {@link applyShape} runs in either thread.
 */

/**
 * Fields to keep: `true` keeps the value whole; a nested shape is applied to the value when it is
 * an object (to each object item when it is a list), and the value is kept as it is otherwise.
 *
 * Example: `{ id: true, flavor: { original_name: true } }`.
 */
export interface PickShape {
  readonly [field: string]: true | PickShape;
}

/**
 * The record cut down to `shape`: an object keeps the shape's fields it has (in the shape's
 * order), a list has each item cut down, anything else is returned as it is (for the mapping to
 * report).
 */
export function applyShape(value: unknown, shape: PickShape): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item: unknown) => applyShape(item, shape));
  const from = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const field in shape) {
    if (!Object.hasOwn(from, field)) continue;
    const inner = shape[field]!;
    // JSON.parse makes "__proto__" an own member; an assignment would set the prototype.
    const picked = inner === true ? from[field] : applyShape(from[field], inner);
    if (field === '__proto__') Object.defineProperty(out, field, { value: picked, writable: true, enumerable: true, configurable: true });
    else out[field] = picked;
  }
  return out;
}

/** A pick function of `shape`, for callers that want one (fetchAllPages' `pick` takes either). */
export function pickBy<T>(shape: PickShape): (record: T) => T {
  return (record) => applyShape(record, shape) as T;
}
