// The event's live state (started/stopped by staff), one record in meta.
import { KitError } from '../errors.ts';
import { type EventState, type KitStore, META } from './open.ts';

export function readEventState(store: KitStore): EventState {
  return (
    (store.meta.get(META.event) as EventState | undefined) ?? {
      live: false,
      eventId: null,
      startedAt: null,
      stoppedAt: null,
    }
  );
}

/**
 * Start or stop the event in one transaction; EVENT_STATE when it already is in that state. A start
 * without an event id takes `fallbackEventId` (the catalog's event).
 */
export function setEventState(
  store: KitStore,
  live: boolean,
  eventId: string | null | undefined,
  fallbackEventId: string | null,
): Promise<EventState> {
  return store.root.transaction(() => {
    const prev = readEventState(store);
    if (prev.live === live) {
      throw new KitError('EVENT_STATE', live ? 'the event is already live' : 'no event is live');
    }
    const now = new Date().toISOString();
    const next: EventState = live
      ? { live: true, eventId: eventId ?? fallbackEventId, startedAt: now, stoppedAt: null }
      : { ...prev, live: false, stoppedAt: now };
    void store.meta.put(META.event, next);
    return next;
  });
}
