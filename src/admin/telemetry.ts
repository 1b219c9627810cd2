// Telemetry, both ends: the producer side a Worker (or the supervisor) reports through, which
// rate-limits itself, and the bounded ring on the main thread that GET /api/telemetry/events reads.
// Not logging: producers log as before; an event is the operator-facing summary of the same thing.

import type { TelemetryEvent, TelemetryInput, TelemetryResponse, Telemetry } from "./types.ts";

/** Events the ring keeps: the latest N; older ones are dropped and counted. */
export const TELEMETRY_RING_EVENTS = 1_000;
/** A producer passes on the first event of a kind (per destination, if it names one) per window. */
export const TELEMETRY_WINDOW_MS = 1_000;
/** Keys a producer remembers; past this it forgets them all (a flood of destinations costs no more). */
const PRODUCER_KEYS_MAX = 1_024;

/** The producer side: passes the first event of each kind (and destination) per window to `send`,
 *  counts the rest into the next one that passes (`fields.suppressed`). Never throws. */
export class RateLimitedTelemetry implements Telemetry {
  private readonly send: (event: TelemetryInput) => void;
  private readonly now: () => number;
  private readonly windowMs: number;
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    send: (event: TelemetryInput) => void,
    now: () => number = Date.now,
    windowMs = TELEMETRY_WINDOW_MS,
  ) {
    this.send = send;
    this.now = now;
    this.windowMs = windowMs;
  }

  emit(event: TelemetryInput): void {
    const destination = event.fields?.destination;
    const key = destination === undefined ? event.kind : `${event.kind} ${String(destination)}`;
    const now = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.at < this.windowMs) {
      seen.suppressed++;
      return;
    }
    if (seen === undefined && this.last.size >= PRODUCER_KEYS_MAX) this.last.clear();
    const suppressed = seen?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    try {
      this.send(suppressed === 0 ? event : { ...event, fields: { ...event.fields, suppressed } });
    } catch {
      // A closed channel (the Worker is stopping): telemetry is best effort by contract.
    }
  }
}

/** The main thread's ring: ids from 1, one per event, never reused; holds the latest N. */
export class TelemetryRing {
  private readonly capacity: number;
  private readonly events: TelemetryEvent[] = [];
  private nextId = 1;
  private droppedCount = 0;
  private readonly now: () => number;

  constructor(capacity = TELEMETRY_RING_EVENTS, now: () => number = Date.now) {
    this.capacity = capacity;
    this.now = now;
  }

  /** Stamps id and time; `worker` when a Worker produced it. Returns the stored event. */
  push(input: TelemetryInput, worker?: number): TelemetryEvent {
    const event: TelemetryEvent = {
      id: this.nextId++,
      time_ms: this.now(),
      ...(worker === undefined ? {} : { worker }),
      kind: input.kind,
      level: input.level,
      message: input.message,
      ...(input.fields === undefined ? {} : { fields: input.fields }),
    };
    this.events.push(event);
    if (this.events.length > this.capacity) {
      this.events.shift();
      this.droppedCount++;
    }
    return event;
  }

  /** Events with an id above `since` (0: all the ring holds), oldest first. */
  since(since: number): TelemetryResponse {
    // Ids are consecutive, so the first wanted one is found by arithmetic, not by a search.
    const firstId = this.events[0]?.id ?? this.nextId;
    const from = Math.max(0, Math.min(this.events.length, since + 1 - firstId));
    return { next_id: this.nextId, dropped: this.droppedCount, events: this.events.slice(from) };
  }

  /** Events per kind since start, for /metrics. */
  get total(): number {
    return this.nextId - 1;
  }
}
