// One Worker's upstream pool on real loopback sockets, driven by the test's clock (no timers): reuse,
// LIFO, expiry, an upstream closing idle connections, limits, eviction order, banners, backoff, the
// access rules, shutdown, and the ledger balancing after a scripted sequence. Two pools on one
// shared memory stand in for two Workers. Not through the proxy (proxy.test.ts, workers.test.ts).

import { afterAll, afterEach, describe, expect, test } from "bun:test";
import { parseConfig } from "../../src/config/schema.ts";
import { AccessPolicy } from "../../src/policy/access.ts";
import { createPool, EXHAUSTED } from "../../src/pool/index.ts";
import {
  createUpstreamPoolMemory,
  keyHashes,
  readUpstreamPoolLedger,
  reclaimUpstreamPool,
  SharedPoolState,
  type UpstreamPoolLedger,
} from "../../src/upstream/memory.ts";
import type { UpstreamPool } from "../../src/upstream/pool.ts";
import { mergeDestinations, readUpstreamPoolCounts } from "../../src/upstream/stats.ts";
import { cleanup } from "../support/cleanup.ts";
import { refusedPort } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";
import {
  abandonPool,
  closePools,
  makePool,
  RecordingOwner,
  startTagTarget,
  testClock,
} from "./support.ts";

afterEach(closePools);
afterAll(cleanup);

const HOST = "127.0.0.1";
const keyOf = (port: number) => `${HOST}:${port}`;

/** A take that must hit; returns the target's id of the connection it got. */
async function takeId(pool: UpstreamPool, port: number): Promise<number> {
  const owner = new RecordingOwner();
  const handoff = pool.take(keyOf(port), HOST, port, null, owner);
  if (handoff === null) throw new Error(`expected a hit for ${keyOf(port)}`);
  handoff.socket.write("who?");
  await waitFor(() => owner.received.includes("\n"), "the target's tag");
  handoff.socket.end();
  pool.finished(keyOf(port));
  return Number(owner.received.trim());
}

/** A miss whose client connected on its own: the pool warms one for the next asker. */
function missAndDial(pool: UpstreamPool, port: number): void {
  expect(pool.take(keyOf(port), HOST, port, null, new RecordingOwner())).toBeNull();
  pool.dialed(keyOf(port), HOST, port);
}

/** The identities every ledger keeps (see src/upstream/pool.ts). */
function expectBalanced(ledger: UpstreamPoolLedger): void {
  expect(ledger.total_created).toBe(
    ledger.total_reused +
      ledger.total_idle +
      ledger.expired +
      ledger.evicted +
      ledger.closed_by_upstream +
      ledger.closed_banner +
      ledger.closed_shutdown +
      ledger.closed_crashed,
  );
  expect(ledger.total_reused).toBe(ledger.pool_hits);
  expect(ledger.total_reused).toBe(ledger.connections_in_use + ledger.finished);
}

describe("basic", () => {
  test("a miss warms one connection once its client has dialed; the next take reuses it", async () => {
    const target = startTagTarget();
    const { pool } = makePool();
    missAndDial(pool, target.port);
    await waitFor(() => pool.counts().total_idle === 1, "one warm connection");
    expect(target.conns.length).toBe(1);
    expect(await takeId(pool, target.port)).toBe(0);
    // The take started its replacement at once.
    await waitFor(() => pool.counts().total_idle === 1, "the replacement");
    expect(target.conns.length).toBe(2);
    expect(pool.counts()).toMatchObject({ pool_hits: 1, pool_misses: 1, total_created: 2 });
    target.close();
  });

  test("idle timeout: the sweep closes connections idle_timeout_secs old, on the pool's clock", async () => {
    const target = startTagTarget();
    const clock = testClock();
    const { pool } = makePool({ clock });
    pool.pin(HOST, target.port);
    await waitFor(() => pool.counts().total_idle === 4, "four warm connections");
    clock.ms += 999;
    pool.tick();
    expect(pool.counts().expired).toBe(0);
    clock.ms += 1;
    pool.tick(); // expires all four; the pinned target is topped up again in the same tick
    expect(pool.counts().expired).toBe(4);
    await waitFor(
      () => target.conns.slice(0, 4).every((conn) => conn.eof),
      "the target sees them close",
    );
    await waitFor(() => pool.counts().total_idle === 4, "the pinned target warm again");
    target.close();
  });

  test("an expired connection is never handed out, even before the sweep", async () => {
    const target = startTagTarget();
    const clock = testClock();
    const { pool } = makePool({ clock });
    missAndDial(pool, target.port);
    await waitFor(() => pool.counts().total_idle === 1, "one warm connection");
    clock.ms += 1_000;
    expect(pool.take(keyOf(target.port), HOST, target.port, null, new RecordingOwner())).toBeNull();
    expect(pool.counts()).toMatchObject({ expired: 1, total_idle: 0, pool_misses: 2 });
    target.close();
  });
});

describe("edge cases", () => {
  test("an upstream that closes an idle connection removes it at once, not at the sweep", async () => {
    const target = startTagTarget();
    const { pool } = makePool();
    missAndDial(pool, target.port);
    await waitFor(() => pool.counts().total_idle === 1, "one warm connection");
    target.conns[0]!.end();
    await waitFor(() => pool.counts().total_idle === 0, "the closed one to leave the pool");
    expect(pool.ledger().closed_by_upstream).toBe(1);
    expect(pool.take(keyOf(target.port), HOST, target.port, null, new RecordingOwner())).toBeNull();
    target.close();
  });

  test("a closed server: warm connects are refused and nothing is pooled", async () => {
    const port = refusedPort();
    const { pool } = makePool();
    missAndDial(pool, port);
    await waitFor(() => pool.ledger().refill_failures === 1, "the refused refill");
    expect(pool.counts()).toMatchObject({ total_idle: 0, pending_creates: 0, total_created: 0 });
  });

  test("LIFO: a take gets the freshest idle connection", async () => {
    const target = startTagTarget();
    const clock = testClock();
    const { pool } = makePool({ clock });
    missAndDial(pool, target.port);
    for (let i = 0; i < 3; i++) {
      if (i > 0) pool.dialed(keyOf(target.port), HOST, target.port);
      await waitFor(() => pool.counts().total_idle === i + 1, `warm connection ${i}`);
      clock.ms += 10;
    }
    const owners = [new RecordingOwner(), new RecordingOwner()];
    // Two takes in one turn: the replacement of the first cannot have connected yet.
    const handoffs = owners.map((owner) =>
      pool.take(keyOf(target.port), HOST, target.port, null, owner),
    );
    for (const handoff of handoffs) handoff!.socket.write("who?");
    await waitFor(() => owners.every((owner) => owner.received.includes("\n")), "both tags");
    expect(owners.map((owner) => Number(owner.received.trim()))).toEqual([2, 1]);
    target.close();
  });

  test("max_idle_per_dest holds for one destination across two Workers", async () => {
    const target = startTagTarget();
    const memory = createUpstreamPoolMemory(2, 16);
    const settings = { max_idle_per_dest: 3 };
    const first = makePool({ memory, worker: 0, settings });
    const second = makePool({ memory, worker: 1, settings });
    // Each Worker keeps its share of a pinned target, the shares summing to the limit: 2 and 1.
    first.pool.pin(HOST, target.port);
    await waitFor(() => first.pool.counts().total_idle === 2, "the first Worker's share");
    second.pool.pin(HOST, target.port);
    await waitFor(() => second.pool.counts().total_idle === 1, "what is left for the second");
    // A miss in the second Worker cannot add a fourth: dropped_full, with one event.
    second.pool.dialed(keyOf(target.port), HOST, target.port);
    second.pool.dialed(keyOf(target.port), HOST, target.port);
    expect(second.pool.counts().dropped_full).toBe(2);
    expect(
      second.events.filter((event) => event.kind === "upstream_pool_dropped_full").length,
    ).toBe(1);
    const shared = new SharedPoolState(memory, -1);
    expect(shared.reservedFor(keyHashes(keyOf(target.port)))).toBe(3);
    expect(target.conns.length).toBe(3);
    expect(readUpstreamPoolCounts(memory, 2).total).toMatchObject({
      total_idle: 3,
      destinations: 1,
    });
    target.close();
  });

  test("max_total_idle: the oldest idle connection in this Worker is evicted first", async () => {
    const targets = [0, 1, 2, 3, 4].map(() => startTagTarget());
    const clock = testClock();
    const { pool, events } = makePool({ clock, settings: { max_total_idle: 3 } });
    for (const target of targets.slice(0, 3)) {
      missAndDial(pool, target.port);
      await waitFor(() => target.conns.length === 1 && pool.counts().pending_creates === 0, "warm");
      clock.ms += 10;
    }
    missAndDial(pool, targets[3]!.port); // evicts targets[0]'s
    await waitFor(() => targets[0]!.conns[0]!.eof, "the oldest to close");
    clock.ms += 10;
    missAndDial(pool, targets[4]!.port); // then targets[1]'s
    await waitFor(() => targets[1]!.conns[0]!.eof, "the next oldest to close");
    await waitFor(() => pool.counts().pending_creates === 0, "the refills");
    expect(targets[2]!.conns[0]!.eof).toBe(false);
    expect(pool.counts()).toMatchObject({ evicted: 2, total_idle: 3 });
    expect(events.filter((event) => event.kind === "upstream_pool_evicted").length).toBe(2);
    expect(
      pool
        .destinations()
        .filter((dest) => dest.evicted > 0)
        .map((dest) => dest.destination),
    ).toEqual([keyOf(targets[0]!.port), keyOf(targets[1]!.port)]);
    for (const target of targets) target.close();
  });

  test("max_total_idle across two Workers: the other Worker evicts its older connection when asked", async () => {
    const [older, newer] = [startTagTarget(), startTagTarget()];
    const memory = createUpstreamPoolMemory(2, 1);
    const clock = testClock();
    const settings = { max_total_idle: 1, max_idle_per_dest: 1 };
    // Real doorbells (Atomics.waitAsync) and timers; the shared clock stands still, so nothing expires.
    const first = makePool({ memory, worker: 0, settings, clock, timers: true });
    const second = makePool({ memory, worker: 1, settings, clock, timers: true });
    missAndDial(first.pool, older.port);
    await waitFor(() => first.pool.counts().total_idle === 1, "the first Worker's connection");
    clock.ms += 10;
    missAndDial(second.pool, newer.port); // full: asks the first Worker, which owns the oldest
    await waitFor(() => second.pool.counts().total_idle === 1, "room made in the other Worker");
    expect(first.pool.counts()).toMatchObject({ evicted: 1, total_idle: 0 });
    expect(older.conns[0]!.eof).toBe(true);
    expect(new SharedPoolState(memory, -1).reserved()).toBe(1);
    for (const target of [older, newer]) target.close();
  });

  test("a banner an idle upstream sent reaches the owner first, once, and in order", async () => {
    const target = startTagTarget("220 smtp.example ESMTP ready\r\n");
    const { pool, buffers } = makePool();
    missAndDial(pool, target.port);
    await waitFor(() => pool.bannerBytes() === 30, "the banner held in the pool");
    const held = buffers.stats().free;
    const owner = new RecordingOwner();
    const handoff = pool.take(keyOf(target.port), HOST, target.port, null, owner)!;
    expect(new TextDecoder().decode(handoff.banner!)).toBe("220 smtp.example ESMTP ready\r\n");
    expect(buffers.stats().free).toBe(held + 1); // its slot went back on the take
    handoff.socket.write("who?");
    await waitFor(() => owner.received === "0\n", "the tag, and nothing before it");
    handoff.socket.end();
    target.close();
  });

  test("a banner longer than one slot, or no free slot, closes the connection instead", async () => {
    const long = startTagTarget("x".repeat(1500)); // slot_bytes is 1024 here
    const { pool } = makePool();
    missAndDial(pool, long.port);
    await waitFor(() => pool.ledger().closed_banner === 1, "the long banner closed");
    const short = startTagTarget("hi\r\n");
    const buffers = createPool({ strategy: "queue-ts", slots: 2, slot_bytes: 1024 });
    const dry = makePool({ buffers });
    while (buffers.acquire() !== EXHAUSTED) {} // every slot held elsewhere
    missAndDial(dry.pool, short.port);
    await waitFor(() => dry.pool.ledger().closed_banner === 1, "closed for want of a slot");
    expect(dry.pool.counts().total_idle).toBe(0);
    for (const target of [long, short]) target.close();
  });

  test("a refused destination backs off, reports once per streak, and once on recovery", async () => {
    const port = refusedPort();
    const clock = testClock();
    const { pool, events } = makePool({ clock });
    missAndDial(pool, port);
    await waitFor(() => pool.ledger().refill_failures === 1, "the first failure");
    const backoff = pool.destinations()[0]!.backoff_until_ms - clock.ms;
    expect(backoff).toBe(250);
    missAndDial(pool, port); // within the backoff: nothing is tried
    pool.tick();
    expect(pool.counts().pending_creates).toBe(0);
    clock.ms += backoff;
    pool.tick();
    await waitFor(() => pool.ledger().refill_failures === 2, "the retry after the backoff");
    expect(pool.destinations()[0]).toMatchObject({ refill_failures: 2 });
    expect(pool.destinations()[0]!.backoff_until_ms - clock.ms).toBe(500);
    // The destination comes back: the next retry works and says so.
    const revived = Bun.listen({ hostname: HOST, port, socket: { data() {} } });
    clock.ms += 500;
    pool.tick();
    await waitFor(() => pool.counts().total_idle >= 1, "a warm connection after recovery");
    const reports = events.filter((event) => event.kind === "upstream_pool_refill_failed");
    expect(reports.map((event) => event.level)).toEqual(["warn", "info"]);
    expect(pool.destinations()[0]).toMatchObject({ refill_failures: 0, backoff_until_ms: 0 });
    revived.stop(true);
  });

  test("the pool never pre-connects to the proxy itself, link-local or a denied network", async () => {
    const target = startTagTarget();
    const config = parseConfig({
      access: { rules: [{ action: "deny", destinations: ["127.0.0.0/8"], ports: [target.port] }] },
    });
    const access = new AccessPolicy(config.access, [{ host: HOST, port: 1080 }]);
    expect(access.allowsWarmConnect("169.254.169.254", 80, "169.254.169.254")).toBe(false);
    expect(access.allowsWarmConnect("localhost", 1080, "127.0.0.1")).toBe(false);
    expect(access.allowsWarmConnect(HOST, target.port, HOST)).toBe(false);
    expect(access.allowsWarmConnect(HOST, target.port + 1, HOST)).toBe(true);
    const { pool } = makePool({ access });
    pool.pin(HOST, target.port);
    await waitFor(() => pool.ledger().refill_denied > 0, "the denied refills");
    expect(target.conns.length).toBe(0);
    target.close();
  });

  test("close(): idle connections closed, reservations back, a connect landing late closed at once", async () => {
    let pool: UpstreamPool | null = null;
    // The pool closes while its second connect is in flight: from inside the target's accept.
    const target = startTagTarget("", (id) => {
      if (id === 1) pool!.close();
    });
    const memory = createUpstreamPoolMemory(1, 16);
    pool = makePool({ memory }).pool;
    missAndDial(pool, target.port);
    await waitFor(() => pool.counts().total_idle === 1, "one warm connection");
    pool.dialed(keyOf(target.port), HOST, target.port); // the second
    expect(pool.counts().pending_creates).toBe(1);
    await waitFor(() => target.conns.length === 2, "the second connect to land");
    expect(pool.counts()).toMatchObject({ total_idle: 0, pending_creates: 0 });
    expect(new SharedPoolState(memory, -1).reserved()).toBe(0);
    await waitFor(() => target.conns.every((conn) => conn.eof), "both closed");
    // Whichever side Bun reported first, nothing outlived close() and the books balance.
    const ledger = pool.ledger();
    expect(ledger.closed_shutdown).toBe(ledger.total_created);
    expectBalanced(ledger);
    target.close();
  });

  test("a crashed Worker's reservations and open connections are settled by the supervisor", async () => {
    const target = startTagTarget();
    const memory = createUpstreamPoolMemory(2, 16);
    const survivor = makePool({ memory, worker: 0 });
    const dead = makePool({ memory, worker: 1 });
    abandonPool(dead.pool); // it "crashes": never closed, its sockets left to the end of the test
    missAndDial(survivor.pool, target.port);
    missAndDial(dead.pool, target.port);
    dead.pool.dialed(keyOf(target.port), HOST, target.port);
    await waitFor(() => dead.pool.counts().total_idle === 2, "the doomed Worker's connections");
    await waitFor(() => survivor.pool.counts().total_idle === 1, "the survivor's");
    expect(reclaimUpstreamPool(memory, 1)).toBe(2);
    const shared = new SharedPoolState(memory, -1);
    expect(shared.reserved()).toBe(1);
    expect(shared.reservedFor(keyHashes(keyOf(target.port)))).toBe(1);
    const { per_worker } = readUpstreamPoolLedger(memory, 2);
    expect(per_worker[1]).toMatchObject({ total_idle: 0, closed_crashed: 2, destinations: 0 });
    for (const ledger of per_worker) expectBalanced(ledger);
    target.close();
  });

  test("stats are exactly right after a scripted sequence, and the ledger balances", async () => {
    const [a, b, c] = [startTagTarget(), startTagTarget(), startTagTarget()];
    const clock = testClock();
    const { pool } = makePool({ clock, settings: { max_idle_per_dest: 2, max_total_idle: 3 } });
    const settled = (idle: number) => () =>
      pool.counts().pending_creates === 0 && pool.counts().total_idle === idle;
    missAndDial(pool, a.port); // miss 1 → created 1
    await waitFor(settled(1), "a warm");
    clock.ms += 10;
    expect(await takeId(pool, a.port)).toBe(0); // hit 1, finished → its replacement: created 2
    await waitFor(settled(1), "a's replacement");
    clock.ms += 10;
    missAndDial(pool, b.port); // miss 2 → created 3
    await waitFor(settled(2), "b warm");
    clock.ms += 10;
    pool.dialed(keyOf(a.port), HOST, a.port); // created 4: a holds 2, the pool 3
    await waitFor(settled(3), "a's second");
    pool.dialed(keyOf(a.port), HOST, a.port); // a is at max_idle_per_dest: dropped_full 1
    clock.ms += 10;
    missAndDial(pool, c.port); // miss 3; the pool is full: a's oldest is evicted → created 5
    await waitFor(() => settled(3)() && pool.ledger().evicted === 1, "c warm");
    expect(a.conns[1]!.eof).toBe(true);
    const kept = pool.take(keyOf(a.port), HOST, a.port, null, new RecordingOwner()); // hit 2
    expect(kept).not.toBeNull(); // held open: in use; its replacement → created 6
    await waitFor(settled(3), "a's replacement again");
    b.conns[0]!.end(); // the upstream closes an idle one
    await waitFor(settled(2), "b's close");
    clock.ms += 1_000;
    pool.tick(); // the other two expire
    expect(pool.counts()).toEqual({
      total_idle: 0,
      destinations: 0,
      total_created: 6,
      total_reused: 2,
      pool_hits: 2,
      pool_misses: 3,
      dropped_full: 1,
      expired: 2,
      evicted: 1,
      connections_in_use: 1,
      pending_creates: 0,
    });
    expect(pool.ledger()).toMatchObject({ closed_by_upstream: 1, finished: 1 });
    expectBalanced(pool.ledger());
    const perDest = pool.destinations();
    expect(perDest.find((dest) => dest.destination === keyOf(a.port))).toMatchObject({
      hits: 2,
      misses: 1,
      created: 4,
      reused: 2,
      evicted: 1,
      expired: 1,
      dropped: 1,
      in_use: 1,
      idle: 0,
    });
    // Merging a list with itself doubles every count and keeps the worst backoff.
    const doubled = mergeDestinations([perDest, perDest]);
    expect(doubled.map((dest) => [dest.destination, dest.hits, dest.created])).toEqual(
      [...perDest]
        .sort((x, y) => (x.destination < y.destination ? -1 : 1))
        .map((dest) => [dest.destination, 2 * dest.hits, 2 * dest.created]),
    );
    kept!.socket.end();
    for (const target of [a, b, c]) target.close();
  });
});
