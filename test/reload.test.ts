// The reload's plan (src/reload.ts): which options change, which wait for a restart and keep their
// running value, and the logger whose level and format a reload switches in place.

import { describe, expect, test } from "bun:test";
import { CONFIG_SECTIONS, parseConfig } from "../src/config/schema.ts";
import { changedPaths, planReload, RESTART_ONLY, switchableLogger } from "../src/reload.ts";

describe("planReload", () => {
  test("nothing changed: nothing to apply, nothing waits", () => {
    const running = parseConfig({});
    const plan = planReload(running, parseConfig({}));
    expect(plan.changed).toEqual([]);
    expect(plan.needsRestart).toEqual([]);
    expect(plan.config).toEqual(running);
  });

  test("live options change; restart-only ones keep their running value and are named", () => {
    const running = parseConfig({ pool: { slots: 4096 }, server: { workers: 2 } });
    const next = parseConfig({
      pool: { slots: 8192, handshake_share_percent: 50 },
      server: { workers: 4, connections_max: 500, pool: { enabled: true } },
      relay: { idle_timeout_ms: 1000 },
      forward: [{ listen: "127.0.0.1:8080", target: "127.0.0.1:80" }],
      admin: { listen: "127.0.0.1:9191" },
    });
    const plan = planReload(running, next);
    expect(plan.needsRestart.sort()).toEqual(
      ["admin.listen", "pool.slots", "server.pool", "server.workers"].sort(),
    );
    expect(plan.changed.sort()).toEqual(
      [
        "forward",
        "pool.handshake_share_percent",
        "relay.idle_timeout_ms",
        "server.connections_max",
      ].sort(),
    );
    expect(plan.config.pool.slots).toBe(4096);
    expect(plan.config.server.workers).toBe(2);
    expect(plan.config.server.pool).toEqual(running.server.pool);
    expect(plan.config.admin.listen).toBe(running.admin.listen);
    expect(plan.config.server.connections_max).toBe(500);
    expect(plan.config.pool.handshake_share_percent).toBe(50);
    // The new config itself is left alone.
    expect(next.pool.slots).toBe(8192);
  });

  test("every restart-only key names a real option or section", () => {
    const known = new Set(
      CONFIG_SECTIONS.flatMap((section) => [
        section.name,
        ...section.keys.map((key) => `${section.name}.${key}`),
      ]),
    );
    for (const { key } of RESTART_ONLY) expect(known).toContain(key);
  });

  test("changedPaths compares arrays whole and tables key by key", () => {
    expect(changedPaths({ a: { b: 1, c: [1] } }, { a: { b: 2, c: [1, 2] }, d: 0 })).toEqual([
      "a.b",
      "a.c",
      "d",
    ]);
  });
});

describe("switchableLogger", () => {
  test("a switch changes the level and format of the logger and of children made before", () => {
    const lines: string[] = [];
    const write = (line: string) => lines.push(line);
    const log = switchableLogger({ level: "warn", format: "json", write }, { worker: 1 });
    const child = log.child({ part: "x" });
    log.info("hidden");
    child.info("hidden too");
    log.switchTo({ level: "info", format: "text", write });
    log.info("shown");
    child.child({ more: 2 }).info("child shown");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain("INFO  shown worker=1");
    expect(lines[1]).toContain("child shown");
    expect(lines[1]).toContain("part=x");
    expect(lines[1]).toContain("more=2");
  });
});
