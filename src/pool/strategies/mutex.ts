// Strategy `mutex`: the locked stack behind a futex-style lock built on Atomics.wait/notify
// (Drepper, "Futexes Are Tricky", mutex 3). Not fair: a woken waiter competes with new arrivals.
//
// Lock word: 0 unlocked, 1 locked with no waiters, 2 locked and someone may be sleeping.
// Concurrency note: a waiter sets 2 before sleeping, so an unlocker that saw 2 always notifies; an
// unlocker that saw 1 skips the notify syscall. Atomics.wait re-checks the word, so a notify that
// lands between the exchange and the wait is not lost.

import { LOCK_WORD, type Lock } from "./locked-stack.ts";

export class FutexMutex implements Lock {
  private readonly words: Int32Array;

  constructor(words: Int32Array) {
    this.words = words;
  }

  lock(): void {
    const words = this.words;
    let state = Atomics.compareExchange(words, LOCK_WORD, 0, 1); // uncontended fast path
    if (state === 0) return;
    if (state !== 2) state = Atomics.exchange(words, LOCK_WORD, 2); // announce a waiter
    while (state !== 0) {
      Atomics.wait(words, LOCK_WORD, 2); // sleeps only while the word is still 2
      state = Atomics.exchange(words, LOCK_WORD, 2);
    }
  }

  unlock(): void {
    if (Atomics.sub(this.words, LOCK_WORD, 1) !== 1) {
      Atomics.store(this.words, LOCK_WORD, 0); // was 2: release and wake one sleeper
      Atomics.notify(this.words, LOCK_WORD, 1);
    }
  }
}
