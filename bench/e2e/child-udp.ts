// The UDP load client of the end-to-end benchmark, run as its OWN process (so its CPU is not the
// proxy's): raw SOCKS5 UDP ASSOCIATE (no auth; the client declares its own UDP address), then
//   udp-rate  A associations, each keeping W datagrams of P payload bytes in flight to the UDP echo
//             server for T seconds (a closed loop: one more is sent when one comes back or is counted
//             lost); every datagram carries a sequence number, so a lost one (not back after
//             lostAfterMs) is counted once and a late one is told apart. With W = 0, unpaced:
//             each association sends as fast as this process can, whatever comes back (overload);
//   udp-idle  N associations that each echo one datagram, then stay open until told "release".
// With no proxy (proxyPort null) it sends straight to the echo server: the direct baseline. Results
// are JSON lines on stdout. Started by udp.ts, never run on its own.
//
//   bun bench/e2e/child-udp.ts '<UdpJob as JSON>'

import type { Socket, udp } from "bun";
import { concat, hex } from "../lib/bytes.ts";
import type { ErrorKinds, UdpIdleJob, UdpJob, UdpMessage, UdpRateJob } from "./protocol.ts";

function emit(message: UdpMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

// ── The control connection ─────────────────────────────────────────────────────────────────────

interface Control {
  socket: Socket<ControlState>;
  /** Where the association's datagrams go (BND.ADDR:BND.PORT; 0.0.0.0 means the proxy's host). */
  relayHost: string;
  relayPort: number;
  state: ControlState;
}

interface ControlState {
  buffered: Uint8Array;
  closed: boolean;
  wake: (() => void) | null;
  /** Set once the association is up: a close after that is counted. */
  onClose: (() => void) | null;
}

/**
 * Greeting (no auth) and UDP ASSOCIATE declaring 127.0.0.1:clientPort, on a new TCP connection to
 * the proxy; resolves with the relay's address from the reply. Rejects on a refusal, a close or
 * `timeoutMs`.
 */
async function associate(
  proxyPort: number,
  clientPort: number,
  timeoutMs: number,
): Promise<Control> {
  const state: ControlState = {
    buffered: new Uint8Array(0),
    closed: false,
    wake: null,
    onClose: null,
  };
  const closed = () => {
    if (state.closed) return;
    state.closed = true;
    state.wake?.();
    state.onClose?.();
  };
  const socket = await Bun.connect<ControlState>({
    hostname: "127.0.0.1",
    port: proxyPort,
    data: state,
    socket: {
      data(_socket, chunk) {
        state.buffered = concat(state.buffered, chunk);
        state.wake?.();
      },
      close: closed,
      end: closed,
      error: closed,
      connectError: closed,
    },
  });
  const deadline = performance.now() + timeoutMs;
  const read = async (length: number): Promise<Uint8Array> => {
    while (state.buffered.length < length) {
      if (state.closed) throw new Error("closed during the handshake");
      const left = deadline - performance.now();
      if (left <= 0) throw new Error("handshake timeout");
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        state.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      state.wake = null;
    }
    const out = state.buffered.subarray(0, length);
    state.buffered = state.buffered.subarray(length);
    return out;
  };
  try {
    socket.write(Uint8Array.of(0x05, 0x01, 0x00));
    const greeting = await read(2);
    if (greeting[0] !== 0x05 || greeting[1] !== 0x00) throw new Error(`greeting ${hex(greeting)}`);
    // VER CMD=03 RSV ATYP=01 127.0.0.1 PORT: the address this client sends from.
    socket.write(
      Uint8Array.of(0x05, 0x03, 0x00, 0x01, 127, 0, 0, 1, clientPort >> 8, clientPort & 0xff),
    );
    const head = await read(4);
    if (head[0] !== 0x05 || head[1] !== 0x00) throw new Error(`reply ${hex(head.subarray(0, 2))}`);
    let relayHost: string;
    if (head[3] === 0x01) {
      relayHost = [...(await read(4))].join(".");
    } else if (head[3] === 0x04) {
      const bytes = await read(16);
      const groups: string[] = [];
      for (let index = 0; index < 16; index += 2) {
        groups.push(((bytes[index]! << 8) | bytes[index + 1]!).toString(16));
      }
      relayHost = groups.join(":");
    } else {
      throw new Error(`reply atyp ${hex(head.subarray(3, 4))}`);
    }
    const portBytes = await read(2);
    const relayPort = (portBytes[0]! << 8) | portBytes[1]!;
    if (relayHost === "0.0.0.0" || relayHost === "0:0:0:0:0:0:0:0") relayHost = "127.0.0.1";
    return { socket, relayHost, relayPort, state };
  } catch (error) {
    socket.terminate();
    throw error;
  }
}

/** The SOCKS UDP header for 127.0.0.1:port: RSV RSV FRAG=0 ATYP=01 ADDR PORT (10 bytes). */
function udpHeader(port: number): Uint8Array {
  return Uint8Array.of(0, 0, 0, 0x01, 127, 0, 0, 1, port >> 8, port & 0xff);
}

function errorKind(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ── udp-rate ───────────────────────────────────────────────────────────────────────────────────

/** Sequence numbers tracked per association; more than this outstanding stops sending. */
const RING = 1 << 16;
const MASK = RING - 1;
const IN_FLIGHT = 1;
const BACK = 2;
const LOST = 3;
/** Unpaced: datagrams per association per event-loop turn. */
const BATCH = 32;

interface Flow {
  socket: udp.Socket<"uint8array">;
  /** Where datagrams go: the relay, or the echo server. */
  host: string;
  port: number;
  /** Header + payload, rewritten in place (the kernel copies on send). */
  frame: Uint8Array;
  view: DataView;
  headerBytes: number;
  nextSeq: number;
  /** Oldest sequence number not yet settled (back or lost). */
  tail: number;
  inFlight: number;
  state: Uint8Array;
  sentAt: Float64Array;
  control: Control | null;
}

async function runRate(job: UdpRateJob): Promise<void> {
  const totals = { sent: 0, received: 0, lost: 0, late: 0, sendBlocked: 0, bad: 0 };
  let sending = false;
  const flows: Flow[] = [];

  const unpaced = job.window === 0;
  const fill = (flow: Flow) => {
    let budget = unpaced ? BATCH : Number.POSITIVE_INFINITY;
    while (
      sending &&
      (unpaced ? budget-- > 0 : flow.inFlight < job.window) &&
      totals.sent < job.datagramsMax &&
      flow.nextSeq - flow.tail < RING
    ) {
      const seq = flow.nextSeq;
      flow.view.setUint32(flow.headerBytes, seq);
      if (!flow.socket.send(flow.frame, flow.port, flow.host)) {
        totals.sendBlocked++;
        return; // drain calls fill again
      }
      flow.state[seq & MASK] = IN_FLIGHT;
      flow.sentAt[seq & MASK] = performance.now();
      flow.nextSeq++;
      flow.inFlight++;
      totals.sent++;
    }
  };

  /** Counts as lost what has been out longer than lostAfterMs (everything, with `now` = ∞). */
  const sweep = (flow: Flow, now: number) => {
    while (flow.tail < flow.nextSeq) {
      const index = flow.tail & MASK;
      const state = flow.state[index];
      if (state === IN_FLIGHT) {
        if (now - flow.sentAt[index]! <= job.lostAfterMs) break;
        flow.state[index] = LOST;
        flow.inFlight--;
        totals.lost++;
      }
      flow.tail++;
    }
  };

  const expectedLength = (flow: Flow) => flow.headerBytes + job.payloadBytes;
  const onData = (flow: Flow, data: Uint8Array) => {
    if (data.length !== expectedLength(flow) || (flow.headerBytes > 0 && data[3] !== 0x01)) {
      totals.bad++;
      return;
    }
    const seq = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(
      flow.headerBytes,
    );
    // Only sequence numbers sent and not yet reused by the ring.
    if (seq >= flow.nextSeq || flow.nextSeq - seq > RING) {
      totals.bad++;
      return;
    }
    const index = seq & MASK;
    const state = flow.state[index];
    if (state === IN_FLIGHT) {
      flow.state[index] = BACK;
      flow.inFlight--;
      totals.received++;
    } else if (state === LOST) {
      totals.late++;
    } else {
      totals.bad++; // a duplicate
    }
    if (!unpaced) fill(flow);
  };

  for (let index = 0; index < job.associations; index++) {
    let flow: Flow | null = null;
    const socket = await Bun.udpSocket({
      hostname: "127.0.0.1",
      port: 0,
      binaryType: "uint8array",
      socket: {
        data: (_socket, data) => {
          if (flow !== null) onData(flow, data);
        },
        drain: () => {
          if (flow !== null) fill(flow);
        },
      },
    });
    let control: Control | null = null;
    let host = "127.0.0.1";
    let port = job.targetPort;
    let header: Uint8Array = new Uint8Array(0);
    if (job.proxyPort !== null) {
      control = await associate(job.proxyPort, socket.port, job.timeoutMs);
      host = control.relayHost;
      port = control.relayPort;
      header = udpHeader(job.targetPort);
    }
    const frame = new Uint8Array(header.length + job.payloadBytes);
    frame.set(header);
    for (let at = header.length + 4; at < frame.length; at++) frame[at] = 0x41 + (at % 26);
    flow = {
      socket,
      host,
      port,
      frame,
      view: new DataView(frame.buffer),
      headerBytes: header.length,
      nextSeq: 0,
      tail: 0,
      inFlight: 0,
      state: new Uint8Array(RING),
      sentAt: new Float64Array(RING),
      control,
    };
    flows.push(flow);
  }

  let controlClosed = 0;
  for (const flow of flows) {
    if (flow.control !== null) flow.control.state.onClose = () => controlClosed++;
  }
  const started = performance.now();
  const endMs = started + job.seconds * 1000;
  sending = true;
  for (const flow of flows) fill(flow);
  // Unpaced: a batch per association per turn, letting the echoes in between.
  const pump = () => {
    if (!sending) return;
    for (const flow of flows) fill(flow);
    setImmediate(pump);
  };
  if (unpaced) setImmediate(pump);
  const sweeper = setInterval(() => {
    const now = performance.now();
    for (const flow of flows) {
      sweep(flow, now);
      fill(flow);
    }
  }, 10);
  while (performance.now() < endMs && totals.sent < job.datagramsMax && controlClosed === 0) {
    await Bun.sleep(20);
  }
  sending = false;
  const elapsedS = (performance.now() - started) / 1000;
  // The last ones in flight: back within lostAfterMs, or lost.
  const settleEnd = performance.now() + job.lostAfterMs + 50;
  while (flows.some((flow) => flow.inFlight > 0) && performance.now() < settleEnd) {
    await Bun.sleep(5);
  }
  clearInterval(sweeper);
  for (const flow of flows) sweep(flow, Number.POSITIVE_INFINITY);
  const closedMidRun = controlClosed;
  for (const flow of flows) {
    if (flow.control !== null) {
      flow.control.state.onClose = null;
      flow.control.socket.end();
    }
    flow.socket.close();
  }
  if (closedMidRun > 0) throw new Error(`${closedMidRun} control connection(s) closed mid-run`);
  emit({ type: "udp-rate", ...totals, elapsedS });
}

// ── udp-idle ───────────────────────────────────────────────────────────────────────────────────

interface Held {
  socket: udp.Socket<"uint8array">;
  control: Control;
}

/** One association: its socket, the handshake, one datagram echoed through the relay. */
async function openIdle(job: UdpIdleJob): Promise<Held> {
  let echoed!: () => void;
  const back = new Promise<void>((resolve) => {
    echoed = resolve;
  });
  const socket = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: { data: () => echoed() },
  });
  try {
    const control = await associate(job.proxyPort, socket.port, job.timeoutMs);
    const datagram = concat(udpHeader(job.targetPort), new Uint8Array(64).fill(0x61));
    if (!socket.send(datagram, control.relayPort, control.relayHost)) {
      control.socket.terminate();
      throw new Error("send would block");
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = await Promise.race([
      back.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), job.timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      control.socket.terminate();
      throw new Error("no echo");
    }
    return { socket, control };
  } catch (error) {
    socket.close();
    throw error;
  }
}

async function runIdle(job: UdpIdleJob): Promise<void> {
  const held: Held[] = [];
  const errorKinds: ErrorKinds = {};
  let errors = 0;
  let next = 0;
  const begin = performance.now();
  const worker = async () => {
    while (next < job.count) {
      next++;
      try {
        held.push(await openIdle(job));
      } catch (error) {
        errors++;
        const kind = errorKind(error);
        errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(job.concurrency, job.count) }, worker));
  let closedWhileHeld = 0;
  for (const { control } of held) control.state.onClose = () => closedWhileHeld++;
  emit({
    type: "udp-holding",
    open: held.length,
    errors,
    errorKinds,
    openS: (performance.now() - begin) / 1000,
  });
  // Hold until told "release" (or until stdin ends: the orchestrator is gone).
  for await (const chunk of Bun.stdin.stream()) {
    if (new TextDecoder().decode(chunk).includes("release")) break;
  }
  const whileHeld = closedWhileHeld;
  for (const { socket, control } of held) {
    control.state.onClose = null;
    control.socket.end();
    socket.close();
  }
  emit({ type: "udp-released", closedWhileHeld: whileHeld });
}

// ── main ───────────────────────────────────────────────────────────────────────────────────────

if (import.meta.main) {
  const job = JSON.parse(Bun.argv[2] ?? "null") as UdpJob | null;
  if (job === null) {
    console.error("usage: bun bench/e2e/child-udp.ts '<job JSON>' (started by bench/e2e/udp.ts)");
    process.exit(2);
  }
  const run = job.mode === "udp-rate" ? runRate(job) : runIdle(job);
  run.then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(`e2e-udp: ${error instanceof Error ? error.stack : String(error)}`);
      process.exit(1);
    },
  );
}
