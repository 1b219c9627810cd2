// Per-client limits, shared by every Worker: open connections per client IP, new connections per
// second per client IP (a token bucket), and a block after repeated failed logins. One table in a
// SharedArrayBuffer made by the main thread, keyed by the client's address. Not the global cap
// (admission.ts) and not access rules (src/policy/): this only counts.
//
// Layout (struct of arrays over one SharedArrayBuffer, `capacity` entries, a power of two):
//   words    Int32Array:  [0] the lock word, [1] live entries, [2] deleted entries; then per entry:
//                         state (0 empty, 1 used, 2 deleted), open connections, failed logins in
//                         the current window
//   keys     Uint32Array: per entry the address as 16 bytes (IPv4 as ::ffff:a.b.c.d)
//   times    Float64Array: per entry tokens, tokens' time, window start, blocked until (ms epoch)
//
// Concurrency note. Every read and write of an entry happens under one futex lock (FutexMutex);
// the critical sections are a hash, a short probe and a few stores, with nothing that can throw
// in between, so a Worker that crashes does not die holding it in practice. Times are Date.now()
// (shared by every thread; performance.now() has a per-Worker origin). An entry is deleted as
// soon as it holds nothing (no open connection, a full bucket, no failures, no block); deleted
// slots are reclaimed by a rebuild when used + deleted passes three quarters. If the table is
// full of live entries, a new client is admitted untracked (fail open) and the refusal counters
// say so: the global connections_max still holds.
//
// A little over 300 lines on purpose: the layout, the lock, the probing and the rebuild share one
// set of offsets, and split across files the layout would be stated twice.

import { FutexMutex } from "../pool/strategies/mutex.ts";
import { type IPLiteral, parseIPLiteral } from "../protocol/ip.ts";

export interface ClientLimits {
  /** Open connections per client IP, all Workers together; 0: no limit. */
  readonly connections_max: number;
  /** New connections per second per client IP, with a burst of twice that; 0: no limit. */
  readonly new_per_second: number;
  /** Failed logins per client IP within auth_block_ms before it is refused; 0: never blocked. */
  readonly auth_failures_max: number;
  /** How long a client is refused after too many failed logins, and the window they count in. */
  readonly auth_block_ms: number;
}

/** Why a client was refused at accept. */
export type ClientRefusal = "client_connections" | "client_rate" | "client_blocked";

const HEADER_WORDS = 3; // lock, live, deleted
const LIVE_WORD = 1;
const DELETED_WORD = 2;
const WORDS_PER_ENTRY = 3; // state, open, failures
const TIMES_PER_ENTRY = 4; // tokens, tokens_at, window_at, blocked_until
const EMPTY = 0;
const USED = 1;
const DELETED = 2;
export const CLIENT_TABLE_ENTRIES_MAX = 1 << 16;
const ENTRY_BYTES = TIMES_PER_ENTRY * 8 + 16 + WORDS_PER_ENTRY * 4; // 60

function capacityFor(connectionsMax: number): number {
  let capacity = 1024;
  while (capacity < 2 * connectionsMax && capacity < CLIENT_TABLE_ENTRIES_MAX) capacity *= 2;
  return capacity;
}

/** The shared memory for a table sized for `connectionsMax` open connections (main thread). */
export function createClientTableMemory(connectionsMax: number): SharedArrayBuffer {
  const capacity = capacityFor(connectionsMax);
  return new SharedArrayBuffer(capacity * ENTRY_BYTES + HEADER_WORDS * 4);
}

export class ClientTable {
  /** Refusals on this thread, by reason, and clients admitted untracked (table full). */
  readonly refused = { client_connections: 0, client_rate: 0, client_blocked: 0 };
  untracked = 0;
  /** Whether any limit can act; when none can, admit() and release() are never needed. */
  readonly enabled: boolean;
  private readonly limits: ClientLimits;
  private readonly capacity: number;
  private readonly times: Float64Array;
  private readonly keys: Uint32Array;
  private readonly words: Int32Array;
  private readonly lock: FutexMutex;
  private readonly now: () => number;
  private readonly key = new Uint32Array(4); // scratch: the address being looked up

  /**
   * `loginsChecked`: whether any client here can fail a login (SOCKS5 with a password). Without
   * logins a failed-login block can never be set, so with no other limit on the table is off and
   * accept() never takes its lock.
   */
  constructor(
    memory: SharedArrayBuffer,
    limits: ClientLimits,
    now: () => number = Date.now,
    loginsChecked = true,
  ) {
    this.limits = limits;
    this.enabled =
      limits.connections_max > 0 ||
      limits.new_per_second > 0 ||
      (limits.auth_failures_max > 0 && loginsChecked);
    this.capacity = (memory.byteLength - HEADER_WORDS * 4) / ENTRY_BYTES;
    if (!Number.isInteger(this.capacity) || (this.capacity & (this.capacity - 1)) !== 0) {
      throw new Error(`assert: a client table of ${memory.byteLength} bytes has a whole capacity`);
    }
    this.times = new Float64Array(memory, 0, this.capacity * TIMES_PER_ENTRY);
    this.keys = new Uint32Array(memory, this.times.byteLength, this.capacity * 4);
    const wordsAt = this.times.byteLength + this.keys.byteLength;
    this.words = new Int32Array(memory, wordsAt, HEADER_WORDS + this.capacity * WORDS_PER_ENTRY);
    this.lock = new FutexMutex(this.words); // the lock is words[0] (LOCK_WORD)
    this.now = now;
  }

  /** Takes a place for a new connection from `host`, or says why not. Null: admitted (untracked
   *  when the host is not an IP address, or the table is full). */
  admit(host: string | undefined): ClientRefusal | null {
    if (!this.setKey(host)) return null;
    const now = this.now();
    this.lock.lock();
    try {
      const entry = this.find(true);
      if (entry < 0) {
        this.untracked++;
        return null;
      }
      const refusal = this.check(entry, now);
      if (refusal !== null) {
        this.refused[refusal]++;
        this.deleteIfIdle(entry, now);
        return refusal;
      }
      this.words[this.word(entry, 1)]++;
      return null;
    } finally {
      this.lock.unlock();
    }
  }

  /** Gives back the place admit() took for `host`. */
  release(host: string | undefined): void {
    if (!this.setKey(host)) return;
    const now = this.now();
    this.lock.lock();
    try {
      const entry = this.find(false);
      if (entry < 0) return; // admitted untracked
      const open = this.word(entry, 1);
      if (this.words[open] > 0) this.words[open]--;
      this.deleteIfIdle(entry, now);
    } finally {
      this.lock.unlock();
    }
  }

  /** Counts a failed login from `host`; true when that has just blocked it. */
  authFailed(host: string | undefined): boolean {
    const max = this.limits.auth_failures_max;
    if (max === 0 || !this.setKey(host)) return false;
    const now = this.now();
    this.lock.lock();
    try {
      const entry = this.find(true);
      if (entry < 0) return false;
      const failures = this.word(entry, 2);
      const windowAt = entry * TIMES_PER_ENTRY + 2;
      if (now - this.times[windowAt] > this.limits.auth_block_ms) {
        this.words[failures] = 0; // the window passed: count from here
        this.times[windowAt] = now;
      }
      if (++this.words[failures] < max) return false;
      this.words[failures] = 0;
      this.times[entry * TIMES_PER_ENTRY + 3] = now + this.limits.auth_block_ms;
      return true;
    } finally {
      this.lock.unlock();
    }
  }

  // ── under the lock ──────────────────────────────────────────────────────────────────────────

  private check(entry: number, now: number): ClientRefusal | null {
    const { connections_max, new_per_second } = this.limits;
    const at = entry * TIMES_PER_ENTRY;
    if (this.times[at + 3] > now) return "client_blocked";
    if (connections_max > 0 && this.words[this.word(entry, 1)] >= connections_max) {
      return "client_connections";
    }
    if (new_per_second > 0) {
      const tokens = this.tokensAt(entry, now);
      if (tokens < 1) return "client_rate";
      this.times[at] = tokens - 1;
      this.times[at + 1] = now;
    }
    return null;
  }

  /** The bucket's tokens at `now`: refilled at new_per_second, up to a burst of twice that. */
  private tokensAt(entry: number, now: number): number {
    const at = entry * TIMES_PER_ENTRY;
    const burst = 2 * this.limits.new_per_second;
    const refill = ((now - this.times[at + 1]) / 1000) * this.limits.new_per_second;
    return Math.min(burst, this.times[at] + refill);
  }

  /** Holds nothing: no open connection, no failures counted, no block, a full bucket. */
  private isIdle(entry: number, now: number): boolean {
    return (
      this.words[this.word(entry, 1)] === 0 &&
      this.words[this.word(entry, 2)] === 0 &&
      this.times[entry * TIMES_PER_ENTRY + 3] <= now &&
      (this.limits.new_per_second === 0 ||
        this.tokensAt(entry, now) >= 2 * this.limits.new_per_second)
    );
  }

  private deleteIfIdle(entry: number, now: number): void {
    if (!this.isIdle(entry, now)) return;
    this.words[this.word(entry, 0)] = DELETED;
    this.words[LIVE_WORD]--;
    this.words[DELETED_WORD]++;
  }

  /** The entry for the key in `this.key`, made when `create`; −1 when it is not there, or the
   *  table is three quarters full of live entries (then the client goes untracked). */
  private find(create: boolean): number {
    let found = this.lookup();
    if (found.entry >= 0 || !create) return found.entry;
    const limit = (this.capacity * 3) / 4;
    const { words } = this;
    if (found.insertAt < 0 || words[LIVE_WORD] + words[DELETED_WORD] >= limit) {
      this.rebuild(); // drops deleted entries, and live ones that have gone idle since
      found = this.lookup();
    }
    if (found.insertAt < 0 || words[LIVE_WORD] >= limit) return -1;
    if (words[this.word(found.insertAt, 0)] === DELETED) words[DELETED_WORD]--;
    words[LIVE_WORD]++;
    this.initEntry(found.insertAt);
    return found.insertAt;
  }

  /** Probes for the key: its entry, else where it would go (the first deleted slot on the way,
   *  or the empty slot that ended the probe; −1 when the table has neither). */
  private lookup(): { entry: number; insertAt: number } {
    const mask = this.capacity - 1;
    let index = this.hash() & mask;
    let firstDeleted = -1;
    for (let probe = 0; probe < this.capacity; probe++, index = (index + 1) & mask) {
      const state = this.words[this.word(index, 0)];
      if (state === EMPTY) return { entry: -1, insertAt: firstDeleted >= 0 ? firstDeleted : index };
      if (state === DELETED) {
        if (firstDeleted < 0) firstDeleted = index;
      } else if (this.keyAt(index)) {
        return { entry: index, insertAt: -1 };
      }
    }
    return { entry: -1, insertAt: firstDeleted };
  }

  private initEntry(slot: number): void {
    this.words[this.word(slot, 0)] = USED;
    this.words[this.word(slot, 1)] = 0;
    this.words[this.word(slot, 2)] = 0;
    this.keys.set(this.key, slot * 4);
    const at = slot * TIMES_PER_ENTRY;
    this.times[at] = 2 * this.limits.new_per_second; // a full bucket
    this.times[at + 1] = this.now();
    this.times[at + 2] = 0;
    this.times[at + 3] = 0;
  }

  /** Reinserts the entries still holding something into a cleared table, dropping deleted ones
   *  and those that went idle without being touched again (a client that came once and left
   *  keeps its entry until its bucket refills). Rare: only when live + deleted reach 3/4. */
  private rebuild(): void {
    const { words, keys, times, capacity } = this;
    const now = this.now();
    const live: { key: Uint32Array; fields: number[]; times: Float64Array }[] = [];
    for (let entry = 0; entry < capacity; entry++) {
      if (words[this.word(entry, 0)] !== USED || this.isIdle(entry, now)) continue;
      live.push({
        key: keys.slice(entry * 4, entry * 4 + 4),
        fields: [words[this.word(entry, 1)], words[this.word(entry, 2)]],
        times: times.slice(entry * TIMES_PER_ENTRY, (entry + 1) * TIMES_PER_ENTRY),
      });
    }
    words.fill(0, LIVE_WORD);
    const lookingFor = this.key.slice();
    for (const entry of live) {
      this.key.set(entry.key);
      const slot = this.lookup().insertAt; // a cleared table always has room for what it held
      words[this.word(slot, 0)] = USED;
      words[this.word(slot, 1)] = entry.fields[0];
      words[this.word(slot, 2)] = entry.fields[1];
      keys.set(entry.key, slot * 4);
      times.set(entry.times, slot * TIMES_PER_ENTRY);
    }
    words[LIVE_WORD] = live.length;
    this.key.set(lookingFor);
  }

  private word(entry: number, field: 0 | 1 | 2): number {
    return HEADER_WORDS + entry * WORDS_PER_ENTRY + field;
  }

  private keyAt(entry: number): boolean {
    const at = entry * 4;
    const { keys, key } = this;
    return (
      keys[at] === key[0] &&
      keys[at + 1] === key[1] &&
      keys[at + 2] === key[2] &&
      keys[at + 3] === key[3]
    );
  }

  /** FNV-1a over the 16 key bytes, as four words. */
  private hash(): number {
    let hash = 0x811c9dc5;
    for (let i = 0; i < 4; i++) hash = Math.imul(hash ^ this.key[i], 0x01000193);
    return hash >>> 0;
  }

  /** Loads `host` into the scratch key; false when it is not an IP address. */
  private setKey(host: string | undefined): boolean {
    if (host === undefined) return false;
    const literal: IPLiteral | null = parseIPLiteral(host);
    if (literal === null) return false;
    const bytes = literal.family === 4 ? mapped(literal.bytes) : literal.bytes;
    for (let i = 0; i < 4; i++) {
      this.key[i] =
        ((bytes[i * 4] << 24) |
          (bytes[i * 4 + 1] << 16) |
          (bytes[i * 4 + 2] << 8) |
          bytes[i * 4 + 3]) >>>
        0;
    }
    return true;
  }
}

/** An IPv4 address as the IPv4-mapped IPv6 address ::ffff:a.b.c.d (one key for both spellings). */
function mapped(ipv4: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ipv4, 12);
  return bytes;
}
