// Bounded exponential backoff for the spin paths of the shared free list and the spinlock.
// Not a lock: callers decide what to retry. JavaScript has no pause instruction and no sched_yield,
// so short waits spin on an atomic load and long ones park the thread for a few microseconds.

const SPIN_ROUNDS = 6; // rounds 0..5 spin 1, 2, 4 … 32 loads; later rounds park
const PARK_MIN_MS = 0.02; // first park: 20 µs, then doubling…
const PARK_MAX_MS = 1; // …up to 1 ms, as in ffi/queue.zig (yield alone does not free a core when oversubscribed)

/** Rounds after which a bounded wait has parked about 100 ms in all (ffi/queue.zig's busy_wait_limit_ns). */
export const BACKOFF_ROUNDS_100MS = 110;

const parkWord = new Int32Array(new SharedArrayBuffer(4));

/** Waits a little longer each round. Round 0 is the first retry. */
export function backoff(round: number): void {
  if (round < SPIN_ROUNDS) {
    const spins = 1 << round;
    for (let i = 0; i < spins; i++) Atomics.load(parkWord, 0);
    return;
  }
  const ms = Math.min(PARK_MAX_MS, PARK_MIN_MS * 2 ** (round - SPIN_ROUNDS));
  // Nothing ever notifies parkWord: this is a timed sleep that gives the core to the peer we wait on.
  Atomics.wait(parkWord, 0, 0, ms);
}
