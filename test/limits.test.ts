// The system's limits and their asserted relationships, the descriptor-limit warning, and that
// running out of descriptors never takes the proxy down. Config-dependent relationships are in
// test/config/relations.test.ts.

import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { AssertionError, assert } from "../src/assert.ts";
import {
  connectionsForFileLimit,
  descriptorsExhausted,
  fitToFileLimit,
  openFileLimit,
  parseOpenFileLimit,
} from "../src/fd-limit.ts";
import { LIMIT_INVARIANTS, LIMITS } from "../src/limits.ts";
import { QUEUE_CAPACITY_MAX, QUEUE_CAPACITY_MIN } from "../src/pool/freelist/layout.ts";
import { validatePoolOptions } from "../src/pool/index.ts";
import {
  AUTH_FIELD_BYTES_MAX,
  AUTH_REQUEST_BYTES_MAX,
  HANDSHAKE_BYTES_MAX,
} from "../src/protocol/constants.ts";

describe("limits", () => {
  test("assert() crashes naming the invariant", () => {
    expect(() => assert(true, "fine")).not.toThrow();
    expect(() => assert(false, "two is less than one")).toThrow(
      new AssertionError("two is less than one"),
    );
    expect(() => assert(false, "x")).toThrow("invariant broken: x");
  });

  test("every relationship between the constants is listed and holds", () => {
    expect(LIMIT_INVARIANTS.map(([name]) => name)).toEqual([
      "slot_bytes_min holds a whole handshake message",
      "slot_bytes_min and slot_bytes_max are multiples of slot_bytes_align",
      "pool_slots_min and pool_slots_max are powers of two",
      "the queue's capacity range covers the pool's slot range",
      "every pool the config accepts, createPool accepts",
      "the smallest pool the config accepts fits in slab_bytes_max",
      "the backlog range spans one smallest slot to the largest slab",
      "a local cache (2 × local_batch) fits in the pool",
      "every timeout fits setTimeout",
      "an idle upstream connection fits under the descriptor budget of the largest config",
      "upstream idle_timeout_secs fits the timeout ceiling",
      "the upstream pool's refill backoff range is ordered and fits setTimeout",
      "the sweep range is ordered and below every timeout's ceiling",
      "a Worker's restart backoff is shorter than the time that makes it healthy again",
    ]);
    for (const [name, holds] of LIMIT_INVARIANTS) expect([name, holds]).toEqual([name, true]);
  });

  test("each relationship, restated from the numbers", () => {
    expect(LIMITS.slot_bytes_min).toBeGreaterThanOrEqual(AUTH_REQUEST_BYTES_MAX);
    expect(LIMITS.handshake_message_bytes_max).toBe(AUTH_REQUEST_BYTES_MAX);
    expect(LIMITS.slot_bytes_min % LIMITS.slot_bytes_align).toBe(0);
    expect(LIMITS.slot_bytes_max % LIMITS.slot_bytes_align).toBe(0);
    expect(QUEUE_CAPACITY_MIN).toBeLessThanOrEqual(LIMITS.pool_api_slots_min);
    expect(QUEUE_CAPACITY_MAX).toBeGreaterThanOrEqual(LIMITS.pool_slots_max);
    expect(LIMITS.pool_api_slots_min).toBeLessThanOrEqual(LIMITS.pool_slots_min);
    expect(LIMITS.backlog_bytes_max).toBeGreaterThanOrEqual(LIMITS.slab_bytes_max);
    expect(2 * LIMITS.local_batch_max).toBeLessThanOrEqual(LIMITS.pool_slots_max);
    for (const range of Object.values(LIMITS.timeouts)) {
      expect(range.max_ms).toBeLessThanOrEqual(2 ** 31 - 1);
    }
  });

  test("values that appear in two places are one value", () => {
    expect(LIMITS.credential_bytes_max).toBe(AUTH_FIELD_BYTES_MAX);
    expect(LIMITS.handshake_bytes_max).toBe(HANDSHAKE_BYTES_MAX);
    // The pool library enforces the same maxima the config does.
    const largest = { strategy: "queue", slots: LIMITS.pool_slots_max, slot_bytes: 4096 } as const;
    expect(() => validatePoolOptions(largest)).not.toThrow();
    expect(() => validatePoolOptions({ ...largest, slots: 2 * LIMITS.pool_slots_max })).toThrow(
      `slots: expected a power of two from ${LIMITS.pool_api_slots_min} to ${LIMITS.pool_slots_max}`,
    );
    expect(() =>
      validatePoolOptions({ ...largest, slots: 16, slot_bytes: LIMITS.slot_bytes_max + 1 }),
    ).toThrow(`slot_bytes: expected an integer from 1 to ${LIMITS.slot_bytes_max}`);
    expect(() => validatePoolOptions({ ...largest, slot_bytes: 8192 })).toThrow(
      `slots × slot_bytes: expected at most ${LIMITS.slab_bytes_max} bytes`,
    );
  });
});

const LIMITS_SAMPLE = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

test("reads the soft open-files limit", () => {
  expect(parseOpenFileLimit(LIMITS_SAMPLE)).toBe(1024);
  expect(parseOpenFileLimit(LIMITS_SAMPLE.replace("1024  ", "unlimited"))).toBe(
    Number.POSITIVE_INFINITY,
  );
  expect(parseOpenFileLimit("garbage")).toBeNull();
  expect(openFileLimit()).toBeGreaterThan(0); // this machine's own
});

test("lowers connections_max to what the limit holds, and says so with the fix", () => {
  expect(fitToFileLimit(10_000, 1024)).toEqual({
    connectionsMax: 480, // (1024 − 64 reserved) / 2 per connection
    warning:
      "server.connections_max = 10000 needs about 20064 file descriptors, but the limit is 1024: " +
      "lowered to 480 so that accepting never runs out of descriptors; " +
      "raise the limit (ulimit -n 20064, or LimitNOFILE=20064 under systemd) or lower connections_max",
  });
  expect(fitToFileLimit(480, 1024)).toBeNull();
  expect(fitToFileLimit(100, null)).toBeNull();
  expect(fitToFileLimit(100, Number.POSITIVE_INFINITY)).toBeNull();
  expect(connectionsForFileLimit(32)).toBe(1); // never 0: the proxy still serves one at a time
});

/** User + system CPU seconds of a process so far, from /proc/PID/stat (clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime (fields 14 and 15)
}

test("a proxy out of file descriptors keeps running and serves again once they free up", async () => {
  const proxy = Bun.spawn(
    [
      "bash",
      "-c",
      "ulimit -n 64 && exec bun src/main.ts --socks 127.0.0.1:0 --workers 1 --admin 127.0.0.1:0 --log-format json",
    ],
    { cwd: new URL("..", import.meta.url).pathname, stdout: "ignore", stderr: "pipe" },
  );
  try {
    const lines: Record<string, unknown>[] = [];
    const reader = proxy.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    while (!lines.some((line) => line.msg === "ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`proxy exited before ready: ${JSON.stringify(lines)}`);
      buffered += value;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim()) lines.push(JSON.parse(part));
    }
    // The default connections_max is fitted quietly (an info line); only a chosen one warns.
    expect(
      lines.find((line) => line.msg === "connections_max fitted to the open-file limit"),
    ).toMatchObject({
      level: "info",
      connections_max: 1,
      file_limit: 64,
    });
    const address = String(lines.find((line) => line.msg === "listening")?.address);
    const port = Number(address.split(":").pop());
    // 150 idle clients against a 64-descriptor limit: accepts fail with EMFILE inside Bun.
    const idle = await Promise.all(
      Array.from({ length: 150 }, () =>
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }),
      ),
    );
    // Before, Bun retried the failing accept at once and forever: a core at 100 % while clients
    // waited. Now admission keeps the descriptors inside the limit, and the process idles.
    const cpuBefore = cpuSeconds(proxy.pid);
    await Bun.sleep(1_000); // a window to measure CPU over, not a wait for readiness
    expect(cpuSeconds(proxy.pid) - cpuBefore).toBeLessThan(0.5);
    for (const socket of idle) socket.end();
    // Once they are gone, a fresh client completes a greeting: the process is alive and accepting.
    const reply = await new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no greeting reply within 10 s")), 10_000);
      void Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open: (socket) => void socket.write(new Uint8Array([5, 1, 0])),
          data: (socket, data) => {
            clearTimeout(timer);
            resolve([...data]);
            socket.end();
          },
        },
      });
    });
    expect(reply).toEqual([5, 0]);
    expect(proxy.exitCode).toBeNull();
  } finally {
    proxy.kill("SIGTERM");
    expect(await proxy.exited).toBe(0);
  }
}, 30_000);

test("a refused dial is told from a lack of descriptors by counting them, at most every 100 ms", () => {
  let counted = 0;
  const count = (open: number) => () => {
    counted++;
    return open;
  };
  expect(descriptorsExhausted(count(1023), 1024, 1_000)).toBe(true); // one left: a dial needs it
  expect(descriptorsExhausted(count(10), 1024, 1_050)).toBe(true); // reused within 100 ms
  expect(counted).toBe(1);
  expect(descriptorsExhausted(count(10), 1024, 1_200)).toBe(false);
  expect(descriptorsExhausted(count(10), null, 5_000)).toBe(false); // no limit known
  expect(counted).toBe(2);
});

test("a dial that fails for lack of descriptors answers 01 and logs EMFILE, not 05 and ECONNREFUSED", async () => {
  const child = Bun.spawn(["bash", "-c", "ulimit -n 48 && exec bun test/fixtures/emfile-dial.ts"], {
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  expect({ code, err }).toEqual({ code: 0, err: "" });
  const result = JSON.parse(out) as {
    reply: number[];
    held: number;
    line: Record<string, unknown>;
    code: string;
  };
  expect(result.held).toBeGreaterThan(0); // the fixture did run out of descriptors
  expect(result.reply).toEqual([0x05, 0x01]);
  expect(result.line).toMatchObject({ outcome: "limit", reply: 0x01 });
  expect(result.code).toBe("EMFILE"); // the "upstream unreachable" line; Bun said ECONNREFUSED
}, 30_000);
