// Strategy `spinlock`: the locked stack behind a test-and-test-and-set spinlock with bounded
// exponential backoff. Not a sleeping lock: on an oversubscribed machine a preempted holder makes
// waiters burn their slices, which is exactly what the benchmarks are there to show; after a few
// rounds backoff() parks for microseconds so the holder can run.
//
// Concurrency note: waiters spin on a plain atomic load (the "test") and only attempt the
// compare-exchange (the "test-and-set") when the word reads 0, so the line is not hammered with writes.

import { backoff } from "../freelist/backoff.ts";
import { LOCK_WORD, type Lock } from "./locked-stack.ts";

export class SpinLock implements Lock {
  private readonly words: Int32Array;

  constructor(words: Int32Array) {
    this.words = words;
  }

  lock(): void {
    const words = this.words;
    for (let round = 0; ; round++) {
      if (
        Atomics.load(words, LOCK_WORD) === 0 &&
        Atomics.compareExchange(words, LOCK_WORD, 0, 1) === 0
      ) {
        return;
      }
      backoff(round);
    }
  }

  unlock(): void {
    Atomics.store(this.words, LOCK_WORD, 0);
  }
}
