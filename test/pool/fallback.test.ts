// Without the native library, `queue` still works on the TypeScript queue, warns once with the
// reason, and its stats say so.

import { expect, test } from "bun:test";
import { runBun } from "../support/spawn.ts";

/** The fixture ran on the TypeScript queue and said so in exactly one warning, returned. */
function fellBack({ code, stdout, stderr }: { code: number; stdout: string; stderr: string }) {
  expect(code).toBe(0);
  expect(JSON.parse(stdout)).toEqual({ backend: "typescript", slot: 0, released: 1 });
  const warnings = stderr.split("\n").filter((line) => line.includes("WARN"));
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain(
    'native queue unavailable, pool strategy "queue" uses the TypeScript queue',
  );
  return warnings[0]!;
}

test("a missing native library falls back to TypeScript with one warning naming the reason", async () => {
  const missing = "/nonexistent/libsockpool.so";
  const { code, stdout, stderr } = await runBun(
    new URL("./fixtures/fallback.ts", import.meta.url),
    [],
    {
      SOCKPOOL_NATIVE_LIB: missing,
    },
  );
  expect(fellBack({ code, stdout, stderr })).toContain(missing);
});

// A stale library (built before the last ABI or layout change) must not be called: it would run the
// old contract on the new memory. The fixture plays one by expecting what the real library is not.
test.each([
  ["ABI version", "version", /its ABI version \(sp_version\) is \d+, these bindings need \d+/],
  ["queue layout", "layout", /its queue layout differs: cells_offset 384 \(TypeScript: 512\)/],
])(
  "a library with another %s falls back to TypeScript with one warning naming the rebuild",
  async (_what, mode, mismatch) => {
    const { code, stdout, stderr } = await runBun(
      new URL("./fixtures/stale-native.ts", import.meta.url),
      [mode],
    );
    const warning = fellBack({ code, stdout, stderr });
    expect(warning).toMatch(mismatch);
    expect(warning).toContain('rebuild it with \\"bun run build:native\\"');
  },
);
