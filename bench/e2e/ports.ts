// Ports and readiness for the end-to-end benchmark: free loopback ports below the ephemeral range,
// sockets in TIME_WAIT, waiting until a child listens (from /proc/net/tcp, under a deadline), and
// one SOCKS5 greeting to prove a listener speaks it. Not the children: procs.ts starts and stops them.

import { readFileSync } from "node:fs";
import { type Proc, READY_MS } from "./procs.ts";

/** Ports handed out in this run: never twice, even once released. */
const handedOut = new Set<number>();
/** Listening ports are drawn from [PORT_FLOOR, the ephemeral range's start). */
const PORT_FLOOR = 10_240;

/** The kernel's ephemeral port range (ip_local_port_range); 32768–60999 when unreadable. */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8")
      .trim()
      .split(/\s+/)
      .map(Number);
    if (low !== undefined && high !== undefined && low > PORT_FLOOR) return [low, high];
  } catch {
    // Not Linux, or no /proc: use the usual default.
  }
  return [32_768, 60_999];
}

/**
 * `count` distinct loopback ports that were free a moment ago, all held bound until every one is
 * chosen (bind-to-0 hands the same port back once it is released), and all BELOW the ephemeral
 * range: a listening port taken from that range can be grabbed by one of the thousands of
 * outgoing connections a rate test makes before its peer binds it.
 */
export function freePorts(count: number): number[] {
  const [low] = ephemeralRange();
  const held: { port: number; stop(closeActive?: boolean): void }[] = [];
  try {
    for (let attempt = 0; held.length < count; attempt++) {
      if (attempt > 1_000) throw new Error(`no free port below ${low} after 1000 tries`);
      const port = PORT_FLOOR + Math.floor(Math.random() * (low - PORT_FLOOR));
      if (handedOut.has(port)) continue;
      try {
        held.push(Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }));
        handedOut.add(port);
      } catch {
        // In use: try another.
      }
    }
    return held.map((listener) => listener.port);
  } finally {
    for (const listener of held) listener.stop(true);
  }
}

/** Sockets in TIME_WAIT right now (/proc/net/sockstat), or null. Each holds a port for 60 s. */
export function timeWaitSockets(): number | null {
  try {
    const match = readFileSync("/proc/net/sockstat", "utf8").match(/^TCP:.*\btw (\d+)/m);
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

const TCP_LISTEN = "0A";

/** How many sockets LISTEN on 127.0.0.1:port (or 0.0.0.0:port), from /proc/net/tcp. With
 *  reusePort, each of sockpool's Workers has its own. */
export function listeningSockets(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, "0");
  let count = 0;
  for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
    const fields = line.trim().split(/\s+/);
    const local = fields[1];
    if (local === undefined || fields[3] !== TCP_LISTEN) continue;
    if (local === `0100007F:${hexPort}` || local === `00000000:${hexPort}`) count++;
  }
  return count;
}

/** Waits until every port has at least `sockets` listening sockets; fails early if `proc` dies. */
export async function waitListening(proc: Proc, ports: number[], sockets = 1): Promise<void> {
  const started = performance.now();
  while (ports.some((port) => listeningSockets(port) < sockets)) {
    if (!proc.alive()) {
      await proc.child.exited;
      throw new Error(
        `${proc.name} exited (${proc.child.exitCode ?? proc.child.signalCode}) before listening:\n${proc.stderr()}`,
      );
    }
    if (performance.now() - started > READY_MS) {
      throw new Error(
        `${proc.name} did not listen on ${ports.join(", ")} (×${sockets}) within ${READY_MS} ms:\n${proc.stderr()}`,
      );
    }
    await Bun.sleep(10);
  }
}

/** One SOCKS5 greeting (no auth): resolves true on "05 00". Proves the listener speaks SOCKS5. */
export function socksAnswers(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 2_000);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      resolve(ok);
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open(socket) {
          socket.write(Uint8Array.of(0x05, 0x01, 0x00));
        },
        data(socket, chunk) {
          done(chunk[0] === 0x05 && chunk[1] === 0x00);
          socket.end();
        },
        close() {
          done(false);
        },
        connectError() {
          done(false);
        },
      },
    }).catch(() => done(false));
  });
}
