// The one seeded PRNG (mulberry32) for every randomised test. Not a seed source (seed.ts), not cryptographic.

/**
 * mulberry32: small, fast, any 32-bit seed works (0 included), and the same sequence on every
 * platform. `next()` is exactly the float stream the protocol fuzz tests were written against.
 */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** The next unsigned 32-bit integer. */
  nextU32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A float in [0, 1). */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** An integer in [0, below). */
  int(below: number): number {
    return Math.floor(this.next() * below);
  }

  /** Fills `out` (any length, any offset) with the next bytes: four per draw, low byte first. */
  fill(out: Uint8Array): void {
    const whole = out.length - (out.length % 4);
    let at = 0;
    for (; at < whole; at += 4) {
      const word = this.nextU32();
      out[at] = word;
      out[at + 1] = word >>> 8;
      out[at + 2] = word >>> 16;
      out[at + 3] = word >>> 24;
    }
    if (at === out.length) return;
    const word = this.nextU32();
    for (let shift = 0; at < out.length; at++, shift += 8) out[at] = word >>> shift;
  }
}
