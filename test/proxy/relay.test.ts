// The relay's two pieces with scripted sockets: the Backlog (order, bound, slot accounting) and the
// Pipe (write-through, pause/resume, FIN after the backlog). Real-socket tests are in integration/.

import { describe, expect, test } from "bun:test";
import { createPool, STRATEGY_NAMES, type StrategyName } from "../../src/pool/index.ts";
import { Backlog } from "../../src/proxy/backlog.ts";
import { Pipe, type PipeSocket } from "../../src/proxy/relay.ts";

const SLOT_BYTES = 1024;

/** A socket whose write() accepts at most `room` bytes until given more; records everything. */
class ScriptedSocket implements PipeSocket {
  room: number;
  received: number[] = [];
  paused = false;
  shut = false;
  closed = false;
  constructor(room = Number.POSITIVE_INFINITY) {
    this.room = room;
  }
  write(data: Uint8Array, byteOffset = 0, byteLength = data.length - byteOffset): number {
    if (this.closed) return -1;
    const n = Math.min(this.room, byteLength);
    for (let i = 0; i < n; i++) this.received.push(data[byteOffset + i]!);
    this.room -= n;
    return n;
  }
  pause(): void {
    this.paused = true;
  }
  resume(): void {
    this.paused = false;
  }
  shutdown(): void {
    this.shut = true;
  }
}

/** A small checked pool: 16 slots of 1 KiB (local_batch 4 so `local` fits). */
function smallPool(strategy: StrategyName) {
  return createPool({ strategy, slots: 16, slot_bytes: SLOT_BYTES, checked: true, local_batch: 4 });
}

function bytes(length: number, seed: number): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i * 31 + seed) & 0xff);
}

describe.each(STRATEGY_NAMES)("backlog over the %s pool", (strategy) => {
  test("keeps bytes in order, flushes partially, and returns every slot", () => {
    const pool = smallPool(strategy);
    const backlog = new Backlog(pool, 8 * SLOT_BYTES);
    const first = bytes(2500, 1);
    const second = bytes(700, 2);
    backlog.keep(first, 100); // the sink took the first 100 bytes
    backlog.keep(second, 0);
    expect(backlog.bytes).toBe(2400 + 700);
    expect(backlog.slotCount).toBe(4); // 3100 bytes in 1024-byte slots
    const sink = new ScriptedSocket(1000);
    expect(backlog.flushTo(sink)).toBe("partial");
    sink.room = Number.POSITIVE_INFINITY;
    expect(backlog.flushTo(sink)).toBe("empty");
    expect(sink.received).toEqual([...first.subarray(100), ...second]);
    expect(backlog.bytes).toBe(0);
    expect(pool.stats()).toMatchObject({ in_use: 0, free: 16 });
  });

  test("holds bytes in place, never allocating slots past its bound", () => {
    const pool = smallPool(strategy);
    const backlog = new Backlog(pool, 2 * SLOT_BYTES);
    const chunk = bytes(10_000, 3);
    backlog.keep(chunk, 0);
    expect(backlog.slotCount).toBe(2);
    expect(pool.stats().in_use).toBe(2);
    expect(backlog.bytes).toBe(10_000);
    const sink = new ScriptedSocket();
    expect(backlog.flushTo(sink)).toBe("empty");
    expect(sink.received).toEqual([...chunk]);
    expect(pool.stats().in_use).toBe(0);
  });

  test("holds bytes in place when the pool is exhausted, and clear() returns every slot", () => {
    const pool = createPool({
      strategy,
      slots: 16,
      slot_bytes: SLOT_BYTES,
      checked: true,
      local_batch: 4,
    });
    const hog = new Uint32Array(16);
    expect(pool.acquireMany(hog, 15)).toBe(15); // one slot left
    const backlog = new Backlog(pool, 8 * SLOT_BYTES);
    backlog.keep(bytes(5000, 4), 0);
    expect(backlog.slotCount).toBe(1);
    expect(backlog.bytes).toBe(5000);
    backlog.clear();
    expect(backlog.bytes).toBe(0);
    pool.releaseMany(hog, 15);
    expect(pool.stats()).toMatchObject({ in_use: 0, free: 16 });
  });
});

describe("pipe", () => {
  const owner = {
    finished: 0,
    broken: 0,
    pipeFinished() {
      this.finished++;
    },
    pipeBroken() {
      this.broken++;
    },
  };

  function setup(room: number) {
    const pool = createPool({
      strategy: "queue",
      slots: 16,
      slot_bytes: SLOT_BYTES,
      checked: true,
    });
    const source = new ScriptedSocket();
    const sink = new ScriptedSocket(room);
    owner.finished = 0;
    owner.broken = 0;
    const pipe = new Pipe(pool, 4 * SLOT_BYTES, owner);
    pipe.connect(source, sink);
    return { pool, source, sink, pipe };
  }

  test("a write that finds the sink closed tells the owner at once (a reset, not a FIN)", () => {
    const { pool, sink, pipe } = setup(Number.POSITIVE_INFINITY);
    sink.closed = true;
    pipe.data(bytes(3000, 7));
    expect(owner.broken).toBe(1);
    expect(pool.stats().in_use).toBe(0); // nothing held for a sink that is gone
  });

  test("a flush that finds the sink closed tells the owner too", () => {
    const { sink, pipe } = setup(1000);
    pipe.data(bytes(3000, 8)); // 2000 bytes wait in the backlog
    sink.closed = true;
    pipe.drain();
    expect(owner.broken).toBe(1);
    pipe.dispose();
  });

  test("writes straight through while the sink accepts, with no slot used", () => {
    const { pool, source, sink, pipe } = setup(Number.POSITIVE_INFINITY);
    pipe.data(bytes(3000, 5));
    expect(sink.received.length).toBe(3000);
    expect(source.paused).toBe(false);
    expect(pool.stats().acquired).toBe(0);
    expect(pipe.bytes).toBe(3000);
  });

  test("pauses the source on a short write, resumes once the backlog is out", () => {
    const { pool, source, sink, pipe } = setup(1000);
    const chunk = bytes(3000, 6);
    pipe.data(chunk);
    expect(source.paused).toBe(true);
    expect(pipe.backlog.bytes).toBe(2000);
    pipe.drain(); // spurious: no room yet
    expect(source.paused).toBe(true);
    sink.room = 1500;
    pipe.drain();
    expect(source.paused).toBe(true);
    sink.room = Number.POSITIVE_INFINITY;
    pipe.drain();
    expect(source.paused).toBe(false);
    expect(sink.received).toEqual([...chunk]);
    expect(pool.stats().in_use).toBe(0);
  });

  test("passes a FIN on only after the bytes before it", () => {
    const { sink, pipe } = setup(100);
    pipe.data(bytes(500, 7));
    pipe.end();
    expect(sink.shut).toBe(false);
    expect(owner.finished).toBe(0);
    sink.room = Number.POSITIVE_INFINITY;
    pipe.drain();
    expect(sink.received.length).toBe(500);
    expect(sink.shut).toBe(true);
    expect(owner.finished).toBe(1);
    pipe.drain(); // idempotent
    expect(owner.finished).toBe(1);
  });

  test("queues everything, paused, while the sink is not connected yet", () => {
    const pool = smallPool("queue-ts");
    const source = new ScriptedSocket();
    const pipe = new Pipe(pool, 4 * SLOT_BYTES, owner);
    pipe.connect(source, null);
    pipe.data(bytes(10, 8));
    pipe.end();
    expect(source.paused).toBe(true);
    const sink = new ScriptedSocket();
    pipe.connect(source, sink);
    pipe.drain();
    expect(sink.received).toEqual([...bytes(10, 8)]);
    expect(sink.shut).toBe(true);
    expect(pool.stats().in_use).toBe(0);
  });

  test("drops what a closed sink can no longer receive and frees its slots", () => {
    const { pool, pipe } = setup(0);
    pipe.data(bytes(4000, 9));
    expect(pool.stats().in_use).toBeGreaterThan(0);
    pipe.sinkClosed();
    expect(pool.stats().in_use).toBe(0);
    pipe.data(bytes(100, 10));
    expect(pipe.backlog.bytes).toBe(0);
  });
});
