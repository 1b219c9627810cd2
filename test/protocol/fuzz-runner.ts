// Runs one fast-check property with the project's seed and case count, and says how to replay a
// failure. Not the properties (fuzz*.test.ts) and not the generators (fuzz-arbitraries.ts).

import fc from "fast-check";
import { testSeed } from "../support/seed.ts";

/**
 * Cases per property in CI. There are 16 properties: 12 in fuzz.test.ts (6 decoders × hostile
 * input and valid messages) and 4 in fuzz-handshake.test.ts, so 16 × 625 = 10^4 cases in all.
 * `bun run fuzz` (fuzz.ts) sets SOCKPOOL_FUZZ_RUNS=62500: 16 × 62,500 = 10^6.
 */
export const DEFAULT_RUNS = 625;

/** $SOCKPOOL_FUZZ_RUNS: cases per property; a typo fails loudly rather than running zero cases. */
export const FUZZ_RUNS = runsFromEnv();

function runsFromEnv(): number {
  const text = process.env.SOCKPOOL_FUZZ_RUNS;
  if (text === undefined || text === "") return DEFAULT_RUNS;
  const runs = Number(text);
  if (!Number.isSafeInteger(runs) || runs < 1) {
    throw new Error(`SOCKPOOL_FUZZ_RUNS must be a positive integer, got ${JSON.stringify(text)}`);
  }
  return runs;
}

/** Enough runs that a property may also insist its generator reached every kind of outcome. */
export const COVERAGE_RUNS = 200;

/**
 * Checks `predicate` (which throws on failure) over `FUZZ_RUNS` values of `arbitrary`. The seed is
 * printed before the run (testSeed); a failure throws fast-check's shrunk counterexample with the
 * commands that replay the run and the case. `file` is the test file, for those commands.
 * Returns the number of runs made (fewer than FUZZ_RUNS when replaying one path).
 */
export function fuzz<T>(
  file: string,
  name: string,
  arbitrary: fc.Arbitrary<T>,
  predicate: (value: T) => void,
): number {
  const seed = testSeed(`fuzz ${name}`);
  // A path replays one shrunk case; only meaningful together with -t selecting this property.
  const path = process.env.SOCKPOOL_FUZZ_PATH || undefined;
  const started = performance.now();
  const details = fc.check(fc.property(arbitrary, predicate), {
    seed,
    numRuns: FUZZ_RUNS,
    path,
    endOnFailure: path !== undefined,
  });
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (details.failed) {
    const replay = `SOCKPOOL_TEST_SEED=${seed} SOCKPOOL_FUZZ_RUNS=${FUZZ_RUNS} bun test ${file} -t '${name}'`;
    const error = details.errorInstance;
    throw new Error(
      [
        `[fuzz] ${name}: FAILED after ${details.numRuns} runs and ${details.numShrinks} shrinks (seed ${seed})`,
        `counterexample: ${fc.stringify(details.counterexample)}`,
        `error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`,
        `replay the run:  ${replay}`,
        `replay the case: SOCKPOOL_FUZZ_PATH='${details.counterexamplePath}' ${replay}`,
      ].join("\n"),
    );
  }
  console.log(`[fuzz] ${name}: ${details.numRuns} runs in ${seconds} s (seed ${seed})`);
  return details.numRuns;
}
