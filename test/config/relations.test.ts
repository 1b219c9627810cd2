// Relationships between config fields: each is a config error naming the field and the fix, never
// a crash at start. Not the single-field ranges (schema.test.ts) nor the constants (limits.test.ts).

import { describe, expect, test } from "bun:test";
import { formatIssue } from "../../src/config/errors.ts";
import { validateConfig } from "../../src/config/schema.ts";
import { LIMITS } from "../../src/limits.ts";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;

function problems(input: unknown): string[] {
  const result = validateConfig(input);
  return result.success ? [] : result.issues.map((issue) => formatIssue(issue));
}

describe("the slab (pool.slots × pool.slot_bytes) fits in 4 GiB", () => {
  test("exactly 4 GiB is accepted, anything above is a config error", () => {
    const backlog = { backlog_bytes_max: 16_384 };
    expect(problems({ pool: { slots: 1 << 18, slot_bytes: 16_384 }, relay: backlog })).toEqual([]);
    expect(problems({ pool: { slots: 1 << 19, slot_bytes: 16_384 }, relay: backlog })).toEqual([
      `pool.slots: expected at most ${LIMITS.slab_bytes_max} / pool.slot_bytes (262144, so the slab fits in 4 GiB), got 524288`,
    ]);
  });

  test("a pool over 4 GiB exits 2 with the problem, not a crash at start", async () => {
    const proxy = Bun.spawn(
      ["bun", "src/main.ts", "--socks", "127.0.0.1:0", "--pool-slots", "1048576"],
      { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe" },
    );
    const stderr = await new Response(proxy.stderr).text();
    expect(await proxy.exited).toBe(2);
    expect(stderr).toContain(
      "--pool-slots: expected at most 4294967296 / pool.slot_bytes (262144, so the slab fits in 4 GiB), got 1048576",
    );
    expect(stderr).not.toContain("    at ");
  }, 30_000);
});
