// Benchmarks run here at smoke size so they cannot rot; their figures are never checked here.

import { expect, test } from "bun:test";

test("bench/pool.bench.ts runs every case (BENCH_SMOKE=1)", async () => {
  const child = Bun.spawn(["bun", new URL("../../bench/pool.bench.ts", import.meta.url).pathname], {
    env: { ...process.env, BENCH_SMOKE: "1" },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  expect(stdout.match(/^smoke ok: /gm)?.length).toBe(8);
  expect(stdout).toMatch(/^checksum \d+$/m);
});
