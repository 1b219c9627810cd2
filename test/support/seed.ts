// One way to seed every randomised test: $SOCKPOOL_TEST_SEED replays a run, else a fresh seed.
// Always printed, so a failure can be repeated with the same bytes.

export function testSeed(label: string): number {
  const fromEnv = process.env.SOCKPOOL_TEST_SEED;
  const seed = fromEnv ? Number(fromEnv) >>> 0 : (Math.random() * 0x1_0000_0000) >>> 0;
  console.log(`[seed] ${label}: SOCKPOOL_TEST_SEED=${seed}`);
  return seed;
}
