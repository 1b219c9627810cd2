// The load client of the end-to-end benchmark, run as its OWN process (so its CPU is not the
// proxy's): raw SOCKS5 (no auth, CONNECT to 127.0.0.1), raw HTTP CONNECT or plain TCP, then one of
//   rate  C concurrent loops for T seconds: connect [+ handshake] + 64 B echo + close; latencies;
//   idle  N connections that complete [handshake +] one echo, then stay open until told "close";
//   slow  K connections fed a large stream by the target while this side reads nothing, then
//         one chunk per tick, then everything (the byte count is checked).
// Every failure is counted by kind. Results are JSON lines on stdout. Started by main.ts, never
// run on its own; the connections themselves are load-client.ts.
//
//   bun bench/e2e/child-load.ts '<LoadJob as JSON>'

import { Client, type Conn, type Listener, Phase } from "./load-client.ts";
import type { IdleJob, LoadJob, LoadMessage, RateJob, SlowJob } from "./protocol.ts";

function emit(message: LoadMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: Float64Array, fraction: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(fraction * sorted.length) - 1));
  return sorted[rank]!;
}

// ── rate ───────────────────────────────────────────────────────────────────────────────────────

async function runRate(job: RateJob): Promise<void> {
  const latencies: number[] = [];
  const started = performance.now();
  const endMs = started + job.seconds * 1000;
  let running = job.concurrency;
  let finished!: () => void;
  const allDone = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const next = () => {
    if (performance.now() < endMs) client.open();
    else if (--running === 0) finished();
  };
  const client: Client = new Client(job, {
    ready(conn) {
      conn.echoMs = performance.now();
    },
    closed(conn) {
      // Counted once the whole loop is done: the proxy closed after the server did.
      latencies.push(conn.echoMs - conn.startedMs);
      next();
    },
    failed() {
      // A refused port would otherwise spin: give the loop a millisecond.
      setTimeout(next, 1);
    },
  });
  for (let loop = 0; loop < job.concurrency; loop++) client.open();
  await allDone;
  const elapsedS = (performance.now() - started) / 1000;
  client.close();
  const sorted = Float64Array.from(latencies).sort();
  emit({
    type: "rate",
    completed: latencies.length,
    errors: client.errors,
    errorKinds: client.errorKinds,
    elapsedS,
    p50Ms: percentile(sorted, 0.5),
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted.length === 0 ? 0 : sorted[sorted.length - 1]!,
  });
}

// ── idle ───────────────────────────────────────────────────────────────────────────────────────

async function runIdle(job: IdleJob): Promise<void> {
  const held: Conn[] = [];
  let started = 0;
  let settled = 0;
  let finished!: () => void;
  const allSettled = new Promise<void>((resolve) => {
    finished = resolve;
  });
  const next = () => {
    settled++;
    if (started < job.count) {
      started++;
      client.open();
    } else if (settled === job.count) finished();
  };
  const hooks: Listener = {
    ready(conn) {
      held.push(conn);
      next();
    },
    failed() {
      next();
    },
  };
  const client = new Client(job, hooks);
  const begin = performance.now();
  for (; started < Math.min(job.concurrency, job.count); started++) client.open();
  if (job.count === 0) finished();
  await allSettled;
  // Idle connections must not time out while held.
  client.close();
  emit({
    type: "holding",
    open: held.length,
    errors: client.errors,
    errorKinds: client.errorKinds,
    openS: (performance.now() - begin) / 1000,
  });
  const errorsAtHold = client.errors;
  // Hold until told "release" (or until stdin ends: the orchestrator is gone). Then the echo
  // server closes first, so TIME_WAIT stays on the listening sides and ties up no ephemeral port.
  let released = false;
  for await (const chunk of Bun.stdin.stream()) {
    if (new TextDecoder().decode(chunk).includes("release")) {
      released = true;
      break;
    }
  }
  const errorsWhileHeld = client.errors - errorsAtHold;
  const open = held.filter((conn) => conn.phase === Phase.Ready);
  if (released) {
    let closed = 0;
    let allClosed!: () => void;
    const done = new Promise<void>((resolve) => {
      allClosed = resolve;
    });
    for (const conn of open) conn.closeExpected = true;
    hooks.closed = () => {
      if (++closed === open.length) allClosed();
    };
    emit({ type: "releasing" });
    if (open.length > 0) {
      await Promise.race([done, Bun.sleep(job.timeoutMs)]);
    }
    for (const conn of open) {
      if (conn.phase !== Phase.Done) client.countError("not-closed-by-server");
    }
  }
  for (const conn of open) client.finish(conn);
  emit({
    type: "closed",
    errorsWhileHeld,
    errorsOnRelease: client.errors - errorsAtHold - errorsWhileHeld,
  });
}

// ── slow ───────────────────────────────────────────────────────────────────────────────────────

async function runSlow(job: SlowJob): Promise<void> {
  const ready: Conn[] = [];
  let settled = 0;
  let phase: "stall" | "slow" | "drain" = "stall";
  let connected!: () => void;
  const allConnected = new Promise<void>((resolve) => {
    connected = resolve;
  });
  let drained!: () => void;
  const allDrained = new Promise<void>((resolve) => {
    drained = resolve;
  });
  let complete = 0;
  let receivedBytes = 0;
  const client: Client = new Client(job, {
    ready(conn) {
      ready.push(conn);
      if (++settled === job.count) connected();
    },
    failed(conn) {
      if (conn.phase === Phase.Done && ready.includes(conn)) {
        if (++complete === ready.length) drained(); // a stream that broke counts as finished
        return;
      }
      if (++settled === job.count) connected();
    },
    stream(conn, bytes) {
      receivedBytes += bytes;
      if (phase === "slow") conn.socket?.pause(); // one chunk per tick
      if (conn.receivedBytes > job.streamBytes) {
        client.countError("stream-too-long");
      }
      if (conn.receivedBytes >= job.streamBytes && phase === "drain") {
        client.finish(conn);
        if (++complete === ready.length) drained();
      }
    },
  });
  // The whole connection must finish within its timeout, not just the handshake: sweep later.
  for (let index = 0; index < job.count; index++) client.open();
  await allConnected;
  emit({ type: "stalling", connected: ready.length, errors: client.errors });
  await Bun.sleep(job.stallMs);

  phase = "slow";
  emit({ type: "slow" });
  const slowEnd = performance.now() + job.slowMs;
  while (performance.now() < slowEnd) {
    for (const conn of ready) if (conn.phase === Phase.Ready) conn.socket?.resume();
    await Bun.sleep(job.slowTickMs);
  }

  phase = "drain";
  emit({ type: "draining", receivedBytes });
  const drainStart = performance.now();
  for (const conn of ready) {
    if (conn.phase !== Phase.Ready) continue;
    if (conn.receivedBytes >= job.streamBytes) {
      client.finish(conn);
      complete++;
    } else {
      conn.socket?.resume();
    }
  }
  if (complete === ready.length) drained();
  const timedOut = await Promise.race([
    allDrained.then(() => false),
    Bun.sleep(job.timeoutMs).then(() => true),
  ]);
  if (timedOut) {
    for (const conn of ready) {
      if (conn.phase === Phase.Ready) {
        client.countError("drain-timeout");
        client.finish(conn);
      }
    }
  }
  client.close();
  emit({
    type: "drained",
    receivedBytes,
    errors: client.errors,
    errorKinds: client.errorKinds,
    drainS: (performance.now() - drainStart) / 1000,
  });
}

// ── main ───────────────────────────────────────────────────────────────────────────────────────

if (import.meta.main) {
  const job = JSON.parse(Bun.argv[2] ?? "null") as LoadJob | null;
  if (job === null) {
    console.error("usage: bun bench/e2e/child-load.ts '<job JSON>' (started by bench/e2e/main.ts)");
    process.exit(2);
  }
  const run =
    job.mode === "rate" ? runRate(job) : job.mode === "idle" ? runIdle(job) : runSlow(job);
  run.then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`e2e-load: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}
