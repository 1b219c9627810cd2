// The multi-Worker pool benchmarks, main-thread side: contention (N Workers doing acquire+release pairs
// on one pool) and hand-off (one Worker acquires, another releases). mitata times one thread, so this
// is its own harness: Workers start together through a start gate (Atomics.wait/notify on GATE), run
// until STOP or a pair count, and report counts; the wall time is measured here, from opening the
// gate to the last report. A round during which other processes were busy is re-run (cpu-load.ts).
// Not the per-pair loops: those are in child-worker.ts.

import {
  attachPool,
  createPoolMemory,
  isStrategyName,
  type PoolMemory,
} from "../../src/pool/index.ts";
import {
  type BenchSizes,
  type HandoffSubject,
  LOCAL_BATCH,
  OTHER_CORES_MAX,
  SLOT_BYTES,
  SLOTS,
  type WorkerSubject,
} from "./config.ts";
import { median } from "../lib/stats.ts";
import { type CpuShare, cpuShare, cpuSnapshot } from "./cpu-load.ts";
import {
  CONTROL_BYTES,
  GATE_WORD,
  HEAD_WORD,
  QUIT_WORD,
  RING_BYTES,
  type RoundReport,
  STOP_WORD,
  TAIL_WORD,
  type WorkerJob,
  type WorkerMessage,
} from "./protocol.ts";

/** Total acquire+release pairs per second over all Workers: the median round, and its spread. */
export interface ThroughputFigure {
  ops_per_s: number;
  min_ops_per_s: number;
  max_ops_per_s: number;
  /** Fewest pairs one Worker did over the most, in the median round: 1 is perfectly even. */
  fairness: number;
  /** Cores this process kept busy, mean over the rounds used (at most the Worker count). */
  own_cores: number;
  /** Cores other processes kept busy meanwhile (null: unknown); above OTHER_CORES_MAX the figure is noisy. */
  other_cores: number | null;
  /** Rounds re-run because other processes were busy. */
  rounds_rerun: number;
  /** Fewer than the wanted rounds were clean, so noisy rounds are in the median. */
  noisy: boolean;
  /** Pairs in the rounds used, all Workers. */
  pairs: number;
  checksum: number;
}

/** A Worker and the messages it has sent that nobody has taken yet. */
class BenchWorker {
  private readonly worker: Worker;
  private readonly inbox: WorkerMessage[] = [];
  private waiting: { resolve: (m: WorkerMessage) => void; reject: (e: Error) => void } | null =
    null;
  private failure: Error | null = null;

  constructor(job: WorkerJob, label: string) {
    this.worker = new Worker(new URL("./child-worker.ts", import.meta.url).href);
    this.worker.onmessage = (event: MessageEvent<WorkerMessage>) => {
      if (this.waiting) {
        this.waiting.resolve(event.data);
        this.waiting = null;
      } else {
        this.inbox.push(event.data);
      }
    };
    this.worker.onerror = (event) => {
      this.failure = new Error(`benchmark Worker ${label} failed: ${event.message}`);
      this.waiting?.reject(this.failure);
      this.waiting = null;
    };
    this.worker.postMessage(job);
  }

  next(): Promise<WorkerMessage> {
    const message = this.inbox.shift();
    if (message) return Promise.resolve(message);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  async expectReady(): Promise<void> {
    const message = await this.next();
    if (message.type !== "ready") throw new Error(`expected "ready", got ${message.type}`);
  }

  async expectDone(): Promise<void> {
    const message = await this.next();
    if (message.type !== "done") throw new Error(`expected "done", got ${JSON.stringify(message)}`);
  }

  async expectRound(round: number): Promise<RoundReport> {
    const message = await this.next();
    if (message.type !== "round" || message.round !== round) {
      throw new Error(`expected the report of round ${round}, got ${JSON.stringify(message)}`);
    }
    return message;
  }

  terminate(): void {
    this.worker.terminate();
  }
}

interface Round {
  seconds: number;
  reports: RoundReport[];
  share: CpuShare;
}

function clean(round: Round): boolean {
  return round.share.other_cores === null || round.share.other_cores <= OTHER_CORES_MAX;
}

/** Opens a warm-up round (round 1, not recorded), then recorded ones until `sizes.rounds` are clean
 *  (other processes idle) or `sizes.extraRoundsMax` more have run; then QUIT. Uses the clean rounds,
 *  or every round (marked noisy) when fewer than half of the wanted ones were clean. */
async function runRounds(
  workers: BenchWorker[],
  control: Int32Array,
  sizes: BenchSizes,
  beforeRound: () => void,
): Promise<{ rounds: Round[]; rerun: number; noisy: boolean }> {
  await Promise.all(workers.map((w) => w.expectReady()));
  const recorded: Round[] = [];
  const enough = (): boolean =>
    recorded.filter(clean).length >= sizes.rounds ||
    recorded.length >= sizes.rounds + sizes.extraRoundsMax;
  for (let round = 1; round === 1 || !enough(); round++) {
    beforeRound();
    const durationMs = round === 1 ? sizes.warmupMs : sizes.roundMs;
    const before = cpuSnapshot();
    Atomics.store(control, GATE_WORD, round);
    Atomics.notify(control, GATE_WORD); // every Worker waiting at the gate starts now
    const timer = setTimeout(() => Atomics.store(control, STOP_WORD, round), durationMs);
    const reports = await Promise.all(workers.map((w) => w.expectRound(round)));
    const after = cpuSnapshot();
    clearTimeout(timer);
    Atomics.store(control, STOP_WORD, round);
    const share = cpuShare(before, after, navigator.hardwareConcurrency);
    if (round > 1) recorded.push({ seconds: (after.at - before.at) / 1000, reports, share });
  }
  Atomics.store(control, QUIT_WORD, 1);
  Atomics.store(control, GATE_WORD, recorded.length + 2);
  Atomics.notify(control, GATE_WORD);
  await Promise.all(workers.map((w) => w.expectDone()));
  const clean_ = recorded.filter(clean);
  const rerun = recorded.length - clean_.length;
  return clean_.length >= Math.ceil(sizes.rounds / 2)
    ? { rounds: clean_, rerun, noisy: false }
    : { rounds: recorded, rerun, noisy: true };
}

function mean(values: number[]): number {
  return values.reduce((sum, v) => sum + v, 0) / values.length;
}

function memoryFor(subject: string): PoolMemory | null {
  if (!isStrategyName(subject)) return null;
  return createPoolMemory({
    strategy: subject,
    slots: SLOTS,
    slot_bytes: SLOT_BYTES,
    local_batch: LOCAL_BATCH,
  });
}

/** After a run every slot must be free again: the benchmark doubles as a coarse correctness check. */
function assertWhole(memory: PoolMemory | null, label: string): void {
  if (memory === null) return;
  const free = attachPool(memory).stats().free;
  if (free !== SLOTS) throw new Error(`${label}: ${free} of ${SLOTS} slots free after the run`);
}

function figure(
  { rounds, rerun, noisy }: { rounds: Round[]; rerun: number; noisy: boolean },
  pairsOf: (round: Round) => number,
): ThroughputFigure {
  const rates = rounds.map((round) => pairsOf(round) / round.seconds);
  const middle = median(rates);
  const medianRound = rounds[rates.indexOf(middle)]!;
  const counts = medianRound.reports.map((r) => r.pairs);
  return {
    ops_per_s: middle,
    min_ops_per_s: Math.min(...rates),
    max_ops_per_s: Math.max(...rates),
    fairness: Math.min(...counts) / Math.max(...counts),
    own_cores: mean(rounds.map((r) => r.share.own_cores)),
    other_cores: rounds.some((r) => r.share.other_cores === null)
      ? null
      : mean(rounds.map((r) => r.share.other_cores!)),
    rounds_rerun: rerun,
    noisy,
    pairs: rounds.reduce((sum, round) => sum + pairsOf(round), 0),
    checksum: rounds.reduce(
      (sum, round) => sum + round.reports.reduce((s, r) => s + r.checksum, 0),
      0,
    ),
  };
}

/** `count` Workers doing acquire+release pairs on one shared pool (or on nothing, for baselines). */
export async function runContention(
  subject: WorkerSubject,
  count: number,
  sizes: BenchSizes,
): Promise<ThroughputFigure> {
  const memory = memoryFor(subject);
  const controlMemory = new SharedArrayBuffer(CONTROL_BYTES);
  const control = new Int32Array(controlMemory);
  const job: WorkerJob = {
    kind: "pairs",
    subject,
    memory,
    control: controlMemory,
    pairsMax: sizes.pairsMax,
  };
  const workers = Array.from({ length: count }, (_, i) => new BenchWorker(job, `${subject} #${i}`));
  try {
    const run = await runRounds(workers, control, sizes, () => {});
    for (const round of run.rounds) {
      const empty = round.reports.reduce((sum, r) => sum + r.exhausted, 0);
      if (empty > 0)
        throw new Error(`${subject} ×${count}: ${empty} acquires found the pool empty`);
    }
    assertWhole(memory, `${subject} ×${count}`);
    return figure(run, (round) => round.reports.reduce((sum, r) => sum + r.pairs, 0));
  } finally {
    for (const w of workers) w.terminate();
  }
}

/** One Worker acquires and sends each index through an SPSC ring; another releases it. */
export async function runHandoff(
  subject: HandoffSubject,
  sizes: BenchSizes,
): Promise<ThroughputFigure> {
  const memory = memoryFor(subject);
  const controlMemory = new SharedArrayBuffer(CONTROL_BYTES);
  const control = new Int32Array(controlMemory);
  const ringMemory = new SharedArrayBuffer(RING_BYTES);
  const ring = new Int32Array(ringMemory);
  const base = {
    subject,
    memory,
    control: controlMemory,
    ring: ringMemory,
    pairsMax: sizes.pairsMax,
  };
  const producer = new BenchWorker({ ...base, kind: "producer" }, `${subject} producer`);
  const consumer = new BenchWorker({ ...base, kind: "consumer" }, `${subject} consumer`);
  try {
    const run = await runRounds([producer, consumer], control, sizes, () => {
      Atomics.store(ring, HEAD_WORD, 0); // both sides are at the gate: nobody else touches the ring
      Atomics.store(ring, TAIL_WORD, 0);
    });
    for (const { reports } of run.rounds) {
      const [sent, released] = reports as [RoundReport, RoundReport];
      if (sent.pairs !== released.pairs || sent.checksum !== released.checksum) {
        throw new Error(
          `${subject} hand-off lost indices: sent ${sent.pairs} (sum ${sent.checksum}), released ${released.pairs} (sum ${released.checksum})`,
        );
      }
    }
    assertWhole(memory, `${subject} hand-off`);
    // A pair is one index acquired by the producer and released by the consumer: count it once.
    return figure(run, (round) => round.reports[1]!.pairs);
  } finally {
    producer.terminate();
    consumer.terminate();
  }
}
