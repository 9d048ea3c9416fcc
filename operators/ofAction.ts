import { type MonoTypeOperatorFunction, filter } from 'rxjs';
import type { EntityAction, EntityEvent } from '../src/model.js';

/**
 * Lets through only events of the given actions.
 *
 * ```
 * source:  --c--u--d--|
 * ofAction('delete')
 * result:  --------d--|
 * ```
 *
 * @example
 * ```ts
 * sync.entity$.pipe(ofType('nova.instance'), ofAction('delete')).subscribe((e) => console.log('gone', e.entity.key));
 * ```
 */
export function ofAction(...actions: EntityAction[]): MonoTypeOperatorFunction<EntityEvent> {
  const wanted = new Set(actions);
  return filter((event) => wanted.has(event.action));
}
