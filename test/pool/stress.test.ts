// Cross-Worker exactly-once stress, every strategy: 4 Workers × 10^5 acquire+release pairs each.
// The 10^8-pair version runs outside CI: `bun run stress`.

import { describe, expect, test } from "bun:test";
import { STRATEGY_NAMES } from "../../src/pool/index.ts";
import { testSeed } from "../support/seed.ts";
import { runStress } from "./stress.ts";

const WORKERS = 4;
const PAIRS = 100_000;
const SLOTS = 64;
const SEED = testSeed("cross-Worker stress");

describe("cross-Worker exactly-once", () => {
  test.each(STRATEGY_NAMES)(
    "%s: 4 Workers, no violations, every slot free once at the end",
    async (strategy) => {
      const result = await runStress({
        strategy,
        workers: WORKERS,
        pairs: PAIRS,
        slots: SLOTS,
        seed: SEED,
      });
      if (result.violations > 0) {
        console.error(`stress failed (rerun with SOCKPOOL_TEST_SEED=${SEED}):`, result.reports);
      }
      expect(result.reports.map((report) => report.pairs >= PAIRS)).toEqual([
        true,
        true,
        true,
        true,
      ]);
      expect(result.violations).toBe(0);
      expect(result.duplicateAtEnd).toBe(0);
      expect(result.freeAtEnd).toBe(SLOTS);
    },
  );
});
