// Without the native library, `queue` still works on the TypeScript queue, warns once with the
// reason, and its stats say so.

import { expect, test } from "bun:test";

test("a missing native library falls back to TypeScript with one warning naming the reason", async () => {
  const missing = "/nonexistent/libsockpool.so";
  const child = Bun.spawn(["bun", new URL("./fixtures/fallback.ts", import.meta.url).pathname], {
    env: { ...process.env, SOCKPOOL_NATIVE_LIB: missing },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  expect(code).toBe(0);
  expect(JSON.parse(stdout)).toEqual({ backend: "typescript", slot: 0, released: 1 });
  const warnings = stderr.split("\n").filter((line) => line.includes("WARN"));
  expect(warnings.length).toBe(1);
  expect(warnings[0]).toContain(
    'native queue unavailable, pool strategy "queue" uses the TypeScript queue',
  );
  expect(warnings[0]).toContain(missing);
});
