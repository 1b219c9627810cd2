// The WAN benchmark's target: a TCP server inside the benchmark's network namespace that answers
// like an HTTP/1.0 server: it reads a request up to its blank line, writes RESPONSE_BYTES and closes.
// A connection that is accepted and left idle (a warm pooled upstream) costs it nothing until used.
// Not a real HTTP server: it checks only that the request ends, never what it asks for.
//
//   ip netns exec sockpool-wan-<pid> bun bench/wan/target.ts 198.18.1.1
//
// Prints {"type":"ready","port":N}; on a "stats" line on stdin, prints its counters; exits when
// stdin ends (the benchmark is gone) or on SIGTERM.

import type { Socket } from "bun";
import { REQUEST_BYTES_MAX, RESPONSE_BYTES, type TargetMessage } from "./protocol.ts";

/** A connection nobody speaks on for this long is closed; above any pool idle timeout used here. */
const IDLE_TIMEOUT_MS = 300_000;

const HEAD = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n";
const RESPONSE = (() => {
  const bodyBytes = RESPONSE_BYTES - HEAD.length - "Content-Length: 000\r\n\r\n".length;
  const text = `${HEAD}Content-Length: ${String(bodyBytes).padStart(3, "0")}\r\n\r\n${"w".repeat(bodyBytes)}`;
  const bytes = new TextEncoder().encode(text);
  if (bytes.length !== RESPONSE_BYTES) throw new Error(`assert: response is ${bytes.length} bytes`);
  return bytes;
})();
const END_OF_HEAD = new TextEncoder().encode("\r\n\r\n");

interface Conn {
  received: number;
  /** The last 3 bytes seen, so a blank line split across reads is still found. */
  tail: Uint8Array;
  answered: boolean;
  /** Response bytes the kernel has not taken yet (never, at 512 B, but handled). */
  unsent: Uint8Array | null;
  lastMs: number;
}

const counts = { accepted: 0, served: 0, unused: 0, errors: 0 };
const open = new Set<Socket<Conn>>();

function emit(message: TargetMessage): void {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

function endsHead(conn: Conn, chunk: Uint8Array): boolean {
  const joined = new Uint8Array(conn.tail.length + chunk.length);
  joined.set(conn.tail, 0);
  joined.set(chunk, conn.tail.length);
  conn.tail = joined.slice(-(END_OF_HEAD.length - 1));
  for (let start = 0; start + END_OF_HEAD.length <= joined.length; start++) {
    if (END_OF_HEAD.every((byte, offset) => joined[start + offset] === byte)) return true;
  }
  return false;
}

function send(socket: Socket<Conn>, bytes: Uint8Array): void {
  const written = socket.write(bytes);
  if (written < 0) return; // closed meanwhile: close() counts it
  if (written < bytes.length) {
    socket.data.unsent = bytes.subarray(written);
    return;
  }
  socket.data.unsent = null;
  counts.served++;
  socket.end(); // HTTP/1.0: the server closes first
}

const host = Bun.argv[2] ?? "198.18.1.1";
const listener = Bun.listen<Conn>({
  hostname: host,
  port: 0,
  socket: {
    open(socket) {
      counts.accepted++;
      socket.data = {
        received: 0,
        tail: new Uint8Array(0),
        answered: false,
        unsent: null,
        lastMs: performance.now(),
      };
      open.add(socket);
    },
    data(socket, chunk) {
      const conn = socket.data;
      conn.lastMs = performance.now();
      if (conn.answered) return; // bytes after the request: ignored, as HTTP/1.0 would
      conn.received += chunk.length;
      if (conn.received > REQUEST_BYTES_MAX) {
        counts.errors++;
        socket.terminate();
        return;
      }
      if (endsHead(conn, chunk)) {
        conn.answered = true;
        send(socket, RESPONSE);
      }
    },
    drain(socket) {
      const unsent = socket.data.unsent;
      if (unsent !== null) send(socket, unsent);
    },
    close(socket) {
      open.delete(socket);
      if (socket.data.received === 0) counts.unused++;
      else if (!socket.data.answered) counts.errors++;
    },
    error(socket) {
      counts.errors++;
      open.delete(socket);
    },
  },
});

// A pooled connection may idle for its whole idle timeout; a bound keeps a leak from growing.
setInterval(() => {
  const now = performance.now();
  for (const socket of open) if (now - socket.data.lastMs > IDLE_TIMEOUT_MS) socket.end();
}, 10_000).unref();

emit({ type: "ready", port: listener.port });

process.on("SIGTERM", () => process.exit(0));
void (async () => {
  const decoder = new TextDecoder();
  for await (const chunk of Bun.stdin.stream()) {
    if (decoder.decode(chunk).includes("stats")) emit({ type: "stats", ...counts });
  }
  process.exit(0); // stdin closed: whoever started us is gone
})();
