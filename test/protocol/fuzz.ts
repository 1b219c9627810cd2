// `bun run fuzz`: the fuzz properties at 62,500 cases each, 16 × 62,500 = 10^6 in all, under one
// seed printed before the start. Not the properties (fuzz*.test.ts), which CI runs at 625 each.
//
//   bun run fuzz                              a fresh seed
//   SOCKPOOL_TEST_SEED=123 bun run fuzz       replays a run
//   SOCKPOOL_FUZZ_RUNS=1000 bun run fuzz      fewer (or more) cases per property

import { testSeed } from "../support/seed.ts";

const FILES = ["./test/protocol/fuzz.test.ts", "./test/protocol/fuzz-handshake.test.ts"];
const RUNS = process.env.SOCKPOOL_FUZZ_RUNS || "62500";
const TIMEOUT_MS = 3_600_000; // per property; bun test's default of 5 s is for CI-sized runs

// One seed for every property, so the line below replays the whole run.
const seed = testSeed("bun run fuzz");
console.log(`fuzz: ${RUNS} cases per property, seed ${seed}`);
console.log(`fuzz: replay with SOCKPOOL_TEST_SEED=${seed} SOCKPOOL_FUZZ_RUNS=${RUNS} bun run fuzz`);

const started = performance.now();
const child = Bun.spawn(["bun", "test", `--timeout=${TIMEOUT_MS}`, ...FILES], {
  stdout: "pipe",
  stderr: "pipe",
  env: { ...process.env, SOCKPOOL_TEST_SEED: String(seed), SOCKPOOL_FUZZ_RUNS: RUNS },
});

// Streams the output through and adds up the "[fuzz] <name>: N runs" lines fuzz-runner.ts prints.
let cases = 0;
let properties = 0;
async function pump(stream: ReadableStream<Uint8Array>, sink: NodeJS.WriteStream): Promise<void> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    sink.write(chunk);
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) {
      const match = line.match(/^\[fuzz\] .*: (\d+) runs in /);
      if (match) {
        cases += Number(match[1]);
        properties++;
      }
    }
  }
}
await Promise.all([pump(child.stdout, process.stdout), pump(child.stderr, process.stderr)]);
const code = await child.exited;
const seconds = ((performance.now() - started) / 1000).toFixed(1);

console.log(`fuzz: ${properties} properties passed, ${cases} cases, ${seconds} s, seed ${seed}`);
if (code !== 0) {
  console.log(`fuzz: FAILED (bun test exit ${code}); the counterexample and its replay are above`);
  console.log(
    `fuzz: replay the run with SOCKPOOL_TEST_SEED=${seed} SOCKPOOL_FUZZ_RUNS=${RUNS} bun run fuzz`,
  );
}
process.exit(code);
