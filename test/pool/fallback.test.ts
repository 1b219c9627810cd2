// Without the native library, `queue` still works on the TypeScript queue, warns once with the
// reason, and its stats say so.

import { expect, test } from "bun:test";
import { runBun } from "../support/spawn.ts";

test("a missing native library falls back to TypeScript with one warning naming the reason", async () => {
  const missing = "/nonexistent/libsockpool.so";
  const { code, stdout, stderr } = await runBun(
    new URL("./fixtures/fallback.ts", import.meta.url),
    [],
    {
      SOCKPOOL_NATIVE_LIB: missing,
    },
  );
  expect(code).toBe(0);
  expect(JSON.parse(stdout)).toEqual({ backend: "typescript", slot: 0, released: 1 });
  const warnings = stderr.split("\n").filter((line) => line.includes("WARN"));
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain(
    'native queue unavailable, pool strategy "queue" uses the TypeScript queue',
  );
  expect(warnings[0]).toContain(missing);
});
