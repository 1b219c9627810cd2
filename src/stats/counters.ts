// The proxy's counters: one block of Float64 words per Worker in one SharedArrayBuffer, written by
// that Worker with plain stores and summed on the main thread only when the admin API is read. Not
// the exposition (src/admin/metrics.ts) and not the buffer pool's own counts (the pool keeps them
// per thread; the admin server asks each Worker for them: src/admin/views.ts, takeSnapshots).
//
// Layout: Worker w's block starts at word w · BLOCK_WORDS; a block is padded to whole 128-byte
// cache lines, so two Workers never write the same line. Inside a block (word offsets in FIELD):
//
//   opened[kind]      connections accepted (past admission), per listener kind
//   closed[kind]      connections closed, per listener kind
//   outcome[o]        connections closed, by outcome (src/protocol/failures.ts), + "worker_crashed"
//   reply[r]          connections closed, by the SOCKS reply byte sent ("00".."08", "ff", "none")
//   bytes_up/down     bytes relayed client → upstream and upstream → client (one add per chunk)
//   refused[reason]   clients refused at accept: connections_max and the per-client reasons
//   handshake[b]      handshake durations: one word per bucket (not cumulative), then sum seconds
//   connect[b]        upstream connect durations (resolve + connect), same layout
//   http_status[s]    HTTP CONNECT connections closed, by the status sent ("200".."505", "other");
//                     such a connection counts under reply "none" (no SOCKS reply was sent)
//   udp[…]            UDP ASSOCIATE: associations opened, closed and refused (udp.associations_max),
//                     datagrams and bytes each way, datagrams dropped by reason
//
// Concurrency note: each word has one writer, the Worker that owns the block; after that Worker
// has exited, the supervisor (main thread) is the only writer (reclaimCounters). Readers on the
// main thread read plain Float64 words that may be mid-update by the Worker: an aligned 8-byte
// load is not torn on the platforms Bun runs on (x86-64, arm64), so a reader sees either the old or
// the new value of each word; two words read one after the other may belong to different instants
// (a closed count can momentarily lead its opened count by one in flight, so open gauges clamp at
// 0). Counts stay exact integers up to 2^53.
// Long on purpose: the word layout, the one writer per block and the reader that sums the blocks
// must agree word for word, so they live together.

import type { Outcome } from "../protocol/failures.ts";
import type { AnswerCode } from "../protocol/front.ts";
import { CACHE_LINE_BYTES } from "../pool/freelist/layout.ts";

export const LISTENER_KINDS = ["socks", "forward", "http"] as const;
export type ListenerKind = (typeof LISTENER_KINDS)[number];

// A Record forces this list to name every Outcome: a new outcome fails to typecheck until added.
const OUTCOME_SET: Record<Outcome, true> = {
  ok: true,
  aborted: true,
  refused: true,
  timeout: true,
  unreachable: true,
  auth_failed: true,
  bad_request: true,
  unsupported: true,
  handshake_timeout: true,
  idle_timeout: true,
  fin_timeout: true,
  error: true,
  denied: true,
  reset: true,
  shutdown: true,
  limit: true,
};
/** Every outcome a close can name, plus the connections a crashed Worker took down with it. */
export const OUTCOMES = [...(Object.keys(OUTCOME_SET) as Outcome[]), "worker_crashed"] as const;
export type CountedOutcome = Outcome | "worker_crashed";

/** Reply labels: the byte as two hex digits, "ff" (no acceptable method), "none" (nothing sent). */
export const REPLY_LABELS = [
  "00",
  "01",
  "02",
  "03",
  "04",
  "05",
  "06",
  "07",
  "08",
  "ff",
  "none",
] as const;
const REPLY_OTHER = REPLY_LABELS.indexOf("01"); // a byte outside the table (none is sent today)
const REPLY_FF = REPLY_LABELS.indexOf("ff");
const REPLY_NONE = REPLY_LABELS.indexOf("none");

/** HTTP statuses the HTTP CONNECT front sends, and "other" for any it might send later. */
export const HTTP_STATUS_LABELS = [
  "200",
  "400",
  "403",
  "405",
  "407",
  "431",
  "502",
  "503",
  "504",
  "505",
  "other",
] as const;

/** Why a datagram of a UDP association was dropped (src/proxy/udp-association.ts). */
export const UDP_DROP_REASONS = [
  "foreign", // not from the client's address (and declared port), nor from a destination it used
  "fragmented", // FRAG ≠ 0: sockpool does not reassemble (RFC 1928 §7 allows dropping)
  "malformed", // a header cut short, an unknown ATYP, an empty domain
  "denied", // an access rule refused the destination
  "destinations", // a new destination past udp.destinations_max
  "rate", // past udp.datagrams_per_second
  "pool_full", // it had to wait and no pool slot was free (or the association's held share is spent)
  "unreachable", // the name did not resolve, or no address of the relay's family
  "oversize", // it had to wait and is larger than a pool slot
] as const;
export type UdpDropReason = (typeof UDP_DROP_REASONS)[number];
const UDP_COUNTS = [
  "opened",
  "closed",
  "refused",
  "datagrams_up",
  "datagrams_down",
  "bytes_up",
  "bytes_down",
] as const;
type UdpCount = (typeof UDP_COUNTS)[number];

export const REFUSAL_REASONS = [
  "connections_max",
  "client_connections",
  "client_rate",
  "client_blocked",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Upper bounds of the latency histograms' buckets, seconds (Prometheus `le`); +Inf is implied. */
export const LATENCY_BUCKETS_S = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
/** Words of one histogram: a word per bucket, one for +Inf, one for the sum of seconds. */
const HISTOGRAM_WORDS = LATENCY_BUCKETS_S.length + 2;

const KINDS = LISTENER_KINDS.length;
export const FIELD = {
  opened: 0,
  closed: KINDS,
  outcome: 2 * KINDS,
  reply: 2 * KINDS + OUTCOMES.length,
  bytes_up: 2 * KINDS + OUTCOMES.length + REPLY_LABELS.length,
  bytes_down: 2 * KINDS + OUTCOMES.length + REPLY_LABELS.length + 1,
  refused: 2 * KINDS + OUTCOMES.length + REPLY_LABELS.length + 2,
  handshake: 2 * KINDS + OUTCOMES.length + REPLY_LABELS.length + 2 + REFUSAL_REASONS.length,
  connect:
    2 * KINDS +
    OUTCOMES.length +
    REPLY_LABELS.length +
    2 +
    REFUSAL_REASONS.length +
    HISTOGRAM_WORDS,
} as const;
const HTTP_STATUS_AT = FIELD.connect + HISTOGRAM_WORDS;
const UDP_AT = HTTP_STATUS_AT + HTTP_STATUS_LABELS.length;
const UDP_DROPPED_AT = UDP_AT + UDP_COUNTS.length;
const USED_WORDS = UDP_DROPPED_AT + UDP_DROP_REASONS.length;
const UDP_WORD = Object.fromEntries(UDP_COUNTS.map((name, i) => [name, UDP_AT + i])) as Record<
  UdpCount,
  number
>;
const LINE_WORDS = CACHE_LINE_BYTES / Float64Array.BYTES_PER_ELEMENT;
/** Words per Worker block, whole cache lines. */
export const BLOCK_WORDS = Math.ceil(USED_WORDS / LINE_WORDS) * LINE_WORDS;

/** The counters' shared memory for `workers` Workers. Main thread, once. */
export function createCounterMemory(workers: number): SharedArrayBuffer {
  return new SharedArrayBuffer(workers * BLOCK_WORDS * Float64Array.BYTES_PER_ELEMENT);
}

/** How many Worker blocks `memory` holds. */
export function counterWorkers(memory: SharedArrayBuffer): number {
  return memory.byteLength / (BLOCK_WORDS * Float64Array.BYTES_PER_ELEMENT);
}

function kindIndex(kind: string): number {
  const index = LISTENER_KINDS.indexOf(kind as ListenerKind);
  if (index < 0) throw new RangeError(`unknown listener kind ${JSON.stringify(kind)}`);
  return index;
}

function replyIndex(reply: number | undefined): number {
  if (reply === undefined) return REPLY_NONE;
  if (reply === 0xff) return REPLY_FF;
  return reply >= 0 && reply <= 8 ? reply : REPLY_OTHER;
}

function observe(words: Float64Array, histogram: number, seconds: number): void {
  let bucket = 0;
  while (bucket < LATENCY_BUCKETS_S.length && seconds > LATENCY_BUCKETS_S[bucket]!) bucket++;
  words[histogram + bucket]! += 1;
  words[histogram + HISTOGRAM_WORDS - 1]! += seconds;
}

/** One Worker's writer. Every method is a few plain Float64 stores into its own block. */
export class WorkerCounters {
  /** This Worker's block: the Pipes add relayed bytes to it directly (FIELD.bytes_up/down). */
  readonly words: Float64Array;
  /** Every Worker's blocks, read only (udpOpenAll). */
  private readonly all: Float64Array;

  constructor(memory: SharedArrayBuffer, worker: number) {
    if (!Number.isInteger(worker) || worker < 0 || worker >= counterWorkers(memory)) {
      throw new RangeError(
        `counter memory has ${counterWorkers(memory)} Worker blocks, none for Worker ${worker} (allocate createCounterMemory(workers))`,
      );
    }
    this.words = new Float64Array(memory, worker * BLOCK_WORDS * 8, BLOCK_WORDS);
    this.all = new Float64Array(memory);
  }

  /** One UDP count (associations, datagrams, bytes) grows by `by`. */
  udp(count: UdpCount, by = 1): void {
    this.words[UDP_WORD[count]]! += by;
  }

  udpDropped(reason: UdpDropReason): void {
    this.words[UDP_DROPPED_AT + UDP_DROP_REASONS.indexOf(reason)]! += 1;
  }

  /** UDP associations open in every Worker, read from their blocks: the global limit's count.
   *  Racy by design (see the concurrency note): two Workers admitting at once may overshoot the
   *  limit by one each, which bounds the overshoot by the number of Workers. */
  udpOpenAll(): number {
    const all = this.all;
    let open = 0;
    for (let at = 0; at < all.length; at += BLOCK_WORDS) {
      open += all[at + UDP_WORD.opened]! - all[at + UDP_WORD.closed]!;
    }
    return open;
  }

  /** Counters of a proxy run without a supervisor (tests, benchmarks): private, read by no one. */
  static detached(): WorkerCounters {
    return new WorkerCounters(createCounterMemory(1), 0);
  }

  /** The word index for `kind`, resolved once per connection rather than per event. Typed, so a
   *  listener kind added to ListenerInfo fails to compile until LISTENER_KINDS has it too. */
  kind(kind: ListenerKind): number {
    return kindIndex(kind);
  }

  opened(kind: number): void {
    this.words[FIELD.opened + kind]! += 1;
  }

  /** `answer`: the SOCKS reply byte or the HTTP status the client got (undefined: none). */
  closed(kind: number, outcome: Outcome, answer: AnswerCode | undefined): void {
    const words = this.words;
    words[FIELD.closed + kind]! += 1;
    words[FIELD.outcome + OUTCOMES.indexOf(outcome)]! += 1;
    const reply = answer !== undefined && "reply" in answer ? answer.reply : undefined;
    words[FIELD.reply + replyIndex(reply)]! += 1;
    if (answer !== undefined && "status" in answer) {
      const label = HTTP_STATUS_LABELS.indexOf(String(answer.status) as "other");
      words[HTTP_STATUS_AT + (label < 0 ? HTTP_STATUS_LABELS.length - 1 : label)]! += 1;
    }
  }

  refused(reason: RefusalReason): void {
    this.words[FIELD.refused + REFUSAL_REASONS.indexOf(reason)]! += 1;
  }

  handshakeSeconds(seconds: number): void {
    observe(this.words, FIELD.handshake, seconds);
  }

  connectSeconds(seconds: number): void {
    observe(this.words, FIELD.connect, seconds);
  }
}

export interface Histogram {
  /** Cumulative counts, one per LATENCY_BUCKETS_S bound, then +Inf (= count). */
  cumulative: number[];
  sum: number;
  count: number;
}

/** Summed (or one Worker's) counters, as the admin server reads them. */
export interface CounterTotals {
  opened: Record<ListenerKind, number>;
  closed: Record<ListenerKind, number>;
  /** opened − closed per kind, never below 0 (see the concurrency note). */
  open: Record<ListenerKind, number>;
  outcomes: Record<CountedOutcome, number>;
  replies: Record<(typeof REPLY_LABELS)[number], number>;
  bytes_up: number;
  bytes_down: number;
  refused: Record<RefusalReason, number>;
  handshake: Histogram;
  connect: Histogram;
  http_status: Record<(typeof HTTP_STATUS_LABELS)[number], number>;
  udp: Record<UdpCount, number> & { open: number };
  udp_dropped: Record<UdpDropReason, number>;
}

function record<K extends string>(keys: readonly K[], words: Float64Array, at: number) {
  const out = {} as Record<K, number>;
  keys.forEach((key, i) => {
    out[key] = words[at + i]!;
  });
  return out;
}

function histogram(words: Float64Array, at: number): Histogram {
  const cumulative: number[] = [];
  let running = 0;
  for (let i = 0; i <= LATENCY_BUCKETS_S.length; i++) {
    running += words[at + i]!;
    cumulative.push(running);
  }
  return { cumulative, sum: words[at + HISTOGRAM_WORDS - 1]!, count: running };
}

function totalsOf(words: Float64Array): CounterTotals {
  const opened = record(LISTENER_KINDS, words, FIELD.opened);
  const closed = record(LISTENER_KINDS, words, FIELD.closed);
  const open = {} as Record<ListenerKind, number>;
  for (const kind of LISTENER_KINDS) open[kind] = Math.max(0, opened[kind] - closed[kind]);
  return {
    opened,
    closed,
    open,
    outcomes: record(OUTCOMES, words, FIELD.outcome),
    replies: record(REPLY_LABELS, words, FIELD.reply),
    bytes_up: words[FIELD.bytes_up]!,
    bytes_down: words[FIELD.bytes_down]!,
    refused: record(REFUSAL_REASONS, words, FIELD.refused),
    handshake: histogram(words, FIELD.handshake),
    connect: histogram(words, FIELD.connect),
    http_status: record(HTTP_STATUS_LABELS, words, HTTP_STATUS_AT),
    udp: {
      ...record(UDP_COUNTS, words, UDP_AT),
      open: Math.max(0, words[UDP_WORD.opened]! - words[UDP_WORD.closed]!),
    },
    udp_dropped: record(UDP_DROP_REASONS, words, UDP_DROPPED_AT),
  };
}

/** Every Worker's counters and their sum. Main thread; reads each block once. */
export function readCounters(memory: SharedArrayBuffer): {
  total: CounterTotals;
  perWorker: CounterTotals[];
} {
  const all = new Float64Array(memory);
  const sum = new Float64Array(BLOCK_WORDS);
  const perWorker: CounterTotals[] = [];
  for (let worker = 0; worker < counterWorkers(memory); worker++) {
    const block = all.slice(worker * BLOCK_WORDS, (worker + 1) * BLOCK_WORDS); // one copy, then stable
    for (let i = 0; i < BLOCK_WORDS; i++) sum[i]! += block[i]!;
    perWorker.push(totalsOf(block));
  }
  return { total: totalsOf(sum), perWorker };
}

/** After Worker `worker` died: the connections it had open are closed (outcome "worker_crashed"),
 *  so the open gauges stay true. Main thread only, after the Worker exited and before another
 *  Worker takes its index (the block's writer is then the new Worker, which keeps adding to it).
 *  Returns how many connections were closed this way. */
export function reclaimCounters(memory: SharedArrayBuffer, worker: number): number {
  const words = new WorkerCounters(memory, worker).words;
  let lost = 0;
  for (let kind = 0; kind < KINDS; kind++) {
    const open = words[FIELD.opened + kind]! - words[FIELD.closed + kind]!;
    if (open <= 0) continue;
    words[FIELD.closed + kind]! += open;
    lost += open;
  }
  words[FIELD.outcome + OUTCOMES.indexOf("worker_crashed")]! += lost;
  // Its UDP associations died with it: closed, so the global limit's count frees their places.
  const udpOpen = words[UDP_WORD.opened]! - words[UDP_WORD.closed]!;
  if (udpOpen > 0) words[UDP_WORD.closed]! += udpOpen;
  words[FIELD.reply + REPLY_NONE]! += lost;
  return lost;
}
