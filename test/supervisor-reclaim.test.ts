// A Worker that crashes gives back what it held: the supervisor returns its pool slots (held ones
// and a `local` cache alike, or its `alloc` budget) and its places under connections_max before
// restarting it, and leaves every other Worker's alone. Real Workers, every strategy.

import { describe, expect, test } from "bun:test";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { createLogger } from "../src/log.ts";
import { attachPool, createPoolMemory, STRATEGY_NAMES } from "../src/pool/index.ts";
import { Supervisor } from "../src/supervisor.ts";
import { HELD_SLOTS, PLACES } from "./fixtures/pool-crash-plan.ts";

const SLOTS = 64;
const LOCAL_BATCH = 4;

describe.each(STRATEGY_NAMES)("pool strategy %s", (strategy) => {
  test("a crashed Worker's slots and places come back before its restart; the other Worker's stay", async () => {
    const lines: string[] = [];
    let restarting!: () => void;
    const crashed = new Promise<void>((resolve) => {
      restarting = resolve;
    });
    const log = createLogger({
      level: "info",
      format: "json",
      write: (line) => {
        lines.push(line);
        // Logged when the restart is scheduled, which is after the reclamation.
        if (line.includes('"worker exited; restarting it"')) restarting();
      },
    });
    // Checked mode too: a reclaimed slot must not look held to the next acquire.
    const memory = createPoolMemory({
      strategy,
      slots: SLOTS,
      slot_bytes: 1024,
      local_batch: LOCAL_BATCH,
      checked: true,
    });
    const fixture = new URL("./fixtures/pool-crash-worker.ts", import.meta.url).href;
    const supervisor = new Supervisor(DEFAULT_CONFIG, memory, 2, log, fixture);
    await supervisor.start();
    const pool = attachPool(memory); // the main thread's view; its own cache stays empty
    const before = { free: pool.stats().free, open: supervisor.openConnectionCount() };
    await crashed;
    const after = { free: pool.stats().free, open: supervisor.openConnectionCount() };
    // Every slot can be taken again, and none is mistaken for one still held (checked mode).
    const all = new Uint32Array(SLOTS);
    const retaken = pool.acquireMany(all, SLOTS);
    pool.releaseMany(all, retaken);
    await supervisor.stop(100);

    const lost = SLOTS - before.free;
    expect(before.open).toBe(PLACES[0] + PLACES[1]);
    // `local` also held its cache: more than the slots in use, at most 2·B more.
    if (strategy === "local") {
      expect(lost).toBeGreaterThan(HELD_SLOTS);
      expect(lost).toBeLessThanOrEqual(HELD_SLOTS + 2 * LOCAL_BATCH);
    } else {
      expect(lost).toBe(HELD_SLOTS);
    }
    expect(after).toEqual({ free: SLOTS, open: PLACES[1] });
    expect(retaken).toBe(SLOTS);
    const reclaimed = lines
      .map((line) => JSON.parse(line) as { msg: string })
      .filter((line) => line.msg.startsWith("worker crashed: reclaimed"));
    expect(reclaimed).toMatchObject([
      {
        msg: `worker crashed: reclaimed ${lost} slots, ${PLACES[0]} connections`,
        worker: 0,
        slots: lost,
        connections: PLACES[0],
      },
    ]);
  }, 20_000);
});
