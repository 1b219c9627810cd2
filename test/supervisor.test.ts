// The supervisor restarts a Worker that crashes, logs it, and stops every Worker on request.

import { expect, test } from "bun:test";
import { DEFAULT_CONFIG } from "../src/config/schema.ts";
import { createLogger } from "../src/log.ts";
import { createPoolMemory } from "../src/pool/index.ts";
import { Supervisor } from "../src/supervisor.ts";

test("a crashed Worker is logged and restarted; stop() ends them all", async () => {
  const lines: string[] = [];
  let restarted!: () => void;
  const restart = new Promise<void>((resolve) => {
    restarted = resolve;
  });
  const log = createLogger({
    level: "info",
    format: "json",
    write: (line) => {
      lines.push(line);
      if (line.includes('"worker restarted"')) restarted();
    },
  });
  const memory = createPoolMemory({ strategy: "queue-ts", slots: 16, slot_bytes: 1024 });
  const worker = new URL("./fixtures/crashing-worker.ts", import.meta.url).href;
  const supervisor = new Supervisor(DEFAULT_CONFIG, memory, 1, log, worker);
  const started = await supervisor.start();
  expect(started).toEqual({
    listeners: [{ kind: "socks", listen: "127.0.0.1:1", host: "127.0.0.1", port: 1 }],
    backends: ["typescript"],
  });
  await restart; // bounded by the test timeout
  const messages = lines.map(
    (line) => JSON.parse(line) as { msg: string; worker?: number; error?: string },
  );
  expect(messages.find((m) => m.msg === "worker crashed")?.error).toContain("deliberate crash");
  expect(messages.some((m) => m.msg === "worker exited; restarting it" && m.worker === 0)).toBe(
    true,
  );
  expect(supervisor.openConnectionCount()).toBe(2); // the fixture counts its starts there
  await supervisor.stop(100);
}, 10_000);
