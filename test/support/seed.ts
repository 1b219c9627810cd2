// One way to seed every randomised test, always printed so a failure replays. Not the generator (prng.ts).

/** $SOCKPOOL_TEST_SEED replays a run; otherwise a fresh seed. Printed either way. */

export function testSeed(label: string): number {
  const fromEnv = process.env.SOCKPOOL_TEST_SEED;
  const seed = fromEnv ? Number(fromEnv) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
  console.log(`[seed] ${label}: SOCKPOOL_TEST_SEED=${seed}`);
  return seed;
}
