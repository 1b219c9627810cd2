// The pool benchmarks run here at smoke size (BENCH_SMOKE=1, a few seconds) so they cannot rot. Their
// figures are not checked, only that every case ran and wrote sane results to a temporary directory.

import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { STRATEGY_NAMES } from "../../src/pool/index.ts";
import { runBun } from "../support/spawn.ts";

const BENCH = new URL("../../bench/pool/main.ts", import.meta.url);
const SMOKE_TIMEOUT_MS = 60_000;

interface Rate {
  ops_per_s: number;
  fairness: number;
}
interface Single {
  ns_per_op: number;
  allocs_per_op: number | null;
}
interface PoolJson {
  smoke: boolean;
  machine: { cpu: string; cores: number; bun: string };
  single: Record<string, Single>;
  batched: Record<string, Single>;
  workers: Record<string, Record<string, Rate>>;
  handoff: Record<string, Rate | string>;
  targets: { name: string }[];
  checksum: number;
}

test(
  "bench/pool/main.ts runs every case at smoke size and writes JSON and SVG to a temp dir",
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-bench-test-"));
    try {
      const { code, stdout, stderr } = await runBun(BENCH, [], {
        BENCH_SMOKE: "1",
        BENCH_RESULTS_DIR: dir,
      });
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      for (const group of [...STRATEGY_NAMES, "baselines"]) {
        expect(stdout).toContain(`smoke ok: single thread ${group}\n`);
      }
      expect(stdout).toMatch(/^checksum \d+$/m);
      expect(stdout).toContain(`results: ${path.join(dir, "pool.json")}`);
      expect(stdout).toContain("alloc: A acquires → B releases");
      expect(stdout).toContain("n/a (per-thread buffers)");

      const json = JSON.parse(readFileSync(path.join(dir, "pool.json"), "utf8")) as PoolJson;
      expect(json.smoke).toBe(true);
      expect(json.machine.cores).toBeGreaterThan(0);
      expect(json.checksum).toBeGreaterThan(0);
      expect(json.targets.length).toBe(2);
      for (const key of [...STRATEGY_NAMES, "js-array"]) {
        expect(json.single[key]?.ns_per_op).toBeGreaterThan(0);
        expect(json.batched[key]?.ns_per_op).toBeGreaterThan(0);
      }
      for (const key of ["ffi-noop", "ffi-noop-x2", "ring-native", "ring-ts"]) {
        expect(json.single[key]?.ns_per_op).toBeGreaterThan(0);
      }
      for (const key of [...STRATEGY_NAMES, "js-array", "ffi-noop"]) {
        for (const workers of ["1", "2"]) {
          expect(json.workers[key]?.[workers]?.ops_per_s).toBeGreaterThan(0);
        }
      }
      for (const key of [...STRATEGY_NAMES.filter((s) => s !== "alloc"), "ring-only"]) {
        expect((json.handoff[key] as Rate).ops_per_s).toBeGreaterThan(0);
      }
      expect(json.handoff.alloc).toBe("n/a (per-thread buffers)");
      // The point of a pool: a pooled acquire+release allocates nothing (null: the probe could not tell).
      for (const key of STRATEGY_NAMES.filter((s) => s !== "alloc")) {
        expect([0, null]).toContain(json.single[key]!.allocs_per_op);
      }

      const svg = readFileSync(path.join(dir, "pool-workers.svg"), "utf8");
      expect(svg.startsWith("<svg ")).toBe(true);
      expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
      for (const key of STRATEGY_NAMES) expect(svg).toContain(`>${key}</text>`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  SMOKE_TIMEOUT_MS,
);

test("bench/policy/main.ts runs every case at smoke size", async () => {
  const { code, stdout, stderr } = await runBun(
    new URL("../../bench/policy/main.ts", import.meta.url),
    [],
    { BENCH_SMOKE: "1" },
  );
  expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
  for (const name of ["baseline", "1,000 rules, none match", "the last matches", "domain"]) {
    expect(stdout).toContain(name);
  }
  // Every case answered: 200 smoke iterations each, all of which allow.
  expect(stdout).toMatch(/^checksum 1200$/m);
});
