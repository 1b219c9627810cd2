// The soak's upstream side: one scenario target whose behaviour each connection picks with a
// 24-byte header, the blackhole (a python child), and the reports targets hand back to clients.
// Not the clients (scenarios.ts) and not the proxy.

import type { Subprocess } from "bun";
import { join } from "node:path";
import type { Conn } from "../support/conn.ts";
import { REPO_ROOT } from "../support/proxy-process.ts";
import { listenTcp } from "../support/sockets.ts";
import { type StreamDigest, sendGenerated } from "../support/streams.ts";
import { withDeadline } from "../support/wait.ts";

export const HEADER_BYTES = 24;
const MAGIC = 0x4b414f53; // "SOAK" little-endian

/** What the target does after the header. */
export const Mode = {
  /** Streams `down` bytes at once and digests the upload; FIN once both are done. */
  stream: 1,
  /** Digests the upload until the client's FIN, and only then streams `down` bytes + FIN. */
  answerAfterFin: 2,
  /** Streams `down` bytes + FIN at once; then digests the upload until the client's FIN. */
  finFirst: 3,
  /** Streams and, after `up` bytes have been sent, resets (RST) the connection. */
  resetAfter: 4,
  /** Reads the upload and, after `up` bytes have arrived, resets (RST) the connection. */
  resetOnUpload: 5,
} as const;
export type ModeValue = (typeof Mode)[keyof typeof Mode];

export interface Header {
  id: number;
  mode: ModeValue;
  /** Upload bytes the client sends; for resetAfter: bytes sent before the RST. */
  up: number;
  down: number;
  seed: number;
}

export function encodeHeader(header: Header): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, header.id, true);
  view.setUint32(8, header.mode, true);
  view.setUint32(12, header.up, true);
  view.setUint32(16, header.down, true);
  view.setUint32(20, header.seed, true);
  return out;
}

function decodeHeader(bytes: Uint8Array): Header | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (view.getUint32(0, true) !== MAGIC) return null;
  return {
    id: view.getUint32(4, true),
    mode: view.getUint32(8, true) as ModeValue,
    up: view.getUint32(12, true),
    down: view.getUint32(16, true),
    seed: view.getUint32(20, true),
  };
}

/** What the target saw of one connection, handed to the client that opened it. */
export interface TargetReport {
  /** What it sent (null when sending failed part-way). */
  sent: StreamDigest | null;
  /** What it received after the header, until FIN or close. */
  received: StreamDigest;
  /** Whether the upload ended with a FIN (true) or a close without one. */
  fin: boolean;
  /** Whether an `end` event (a FIN while this side was still open) was seen at all. */
  ended: boolean;
  /** The close error's code, if the socket closed with one (ECONNRESET for a reset). */
  error: string | null;
}

/** Reports by connection id: the client registers before connecting, the target settles it. */
export class Reports {
  private readonly waiting = new Map<number, (report: TargetReport) => void>();
  private nextId = 1;

  /** A fresh id and the promise its target's report will settle. */
  expect(): { id: number; report: Promise<TargetReport> } {
    const id = this.nextId++;
    const report = new Promise<TargetReport>((resolve) => this.waiting.set(id, resolve));
    return { id, report };
  }

  settle(id: number, report: TargetReport): void {
    this.waiting.get(id)?.(report);
    this.waiting.delete(id);
  }

  /** Drops a wait whose client gave up, so the map stays bounded. */
  forget(id: number): void {
    this.waiting.delete(id);
  }
}

const TARGET_MS = 60_000; // a target's own bound on one connection; clients give up well before

function errorCode(conn: Conn): string | null {
  return conn.error ? ((conn.error as { code?: string }).code ?? conn.error.message) : null;
}

/** Digests everything after the header until FIN or close; `fin` says which. */
function digestUpload(conn: Conn, first: Uint8Array) {
  const hasher = new Bun.CryptoHasher("sha256");
  let bytes = 0;
  let fin = false;
  const take = (chunk: Uint8Array) => {
    hasher.update(chunk);
    bytes += chunk.length;
  };
  take(first);
  conn.onData = take;
  conn.onEnd = () => {
    fin = true;
  };
  // After this side's own FIN, Bun reports the peer's FIN as a clean close (no error): a FIN too.
  // Only the `end` event counts while this side is still sending (a reset then shows as an error,
  // or as a write on a closed socket).
  const settle = () => ({
    digest: { bytes, sha256: hasher.digest("hex") },
    fin: fin || (conn.closed && conn.error === null),
    ended: fin,
  });
  return conn.waitEnd(TARGET_MS, "the upload to end").then(settle, settle);
}

async function serve(conn: Conn, header: Header, rest: Uint8Array, reports: Reports) {
  const send = () => sendGenerated(conn, header.down, header.seed, TARGET_MS).catch(() => null);
  let sent: StreamDigest | null = null;
  let upload: Awaited<ReturnType<typeof digestUpload>>;
  switch (header.mode) {
    case Mode.stream: {
      const uploading = digestUpload(conn, rest);
      sent = await send();
      upload = await uploading;
      if (sent !== null) await conn.shutdownAfterFlush(TARGET_MS).catch(() => {});
      break;
    }
    case Mode.answerAfterFin: {
      upload = await digestUpload(conn, rest);
      if (upload.fin) {
        sent = await send();
        if (sent !== null) await conn.shutdownAfterFlush(TARGET_MS).catch(() => {});
      }
      break;
    }
    case Mode.finFirst: {
      const uploading = digestUpload(conn, rest);
      sent = await send();
      if (sent !== null) await conn.shutdownAfterFlush(TARGET_MS).catch(() => {});
      upload = await uploading;
      break;
    }
    case Mode.resetAfter: {
      const uploading = digestUpload(conn, rest);
      await sendGenerated(conn, header.up, header.seed, TARGET_MS).catch(() => null);
      conn.socket.terminate();
      upload = await uploading;
      break;
    }
    case Mode.resetOnUpload: {
      let got = rest.length;
      const uploading = digestUpload(conn, rest);
      const reset = () => {
        if (got >= header.up) conn.socket.terminate();
      };
      const take = conn.onData!;
      conn.onData = (chunk) => {
        take(chunk);
        got += chunk.length;
        reset();
      };
      reset();
      upload = await uploading;
      break;
    }
    default:
      conn.socket.terminate();
      return;
  }
  reports.settle(header.id, {
    sent,
    received: upload.digest,
    fin: upload.fin,
    ended: upload.ended,
    error: errorCode(conn),
  });
  if (!conn.closed) conn.end();
}

export interface ScenarioTarget {
  port: number;
  close(): void;
}

/** The one upstream every transfer scenario reaches, by SOCKS5 CONNECT or the forward listener. */
export function startScenarioTarget(reports: Reports): ScenarioTarget {
  const listener = listenTcp("127.0.0.1", 0, (conn) => {
    const chunks: Uint8Array[] = [];
    let have = 0;
    conn.onData = (chunk) => {
      chunks.push(chunk);
      have += chunk.length;
      if (have < HEADER_BYTES) return;
      const all = Buffer.concat(chunks);
      const header = decodeHeader(all);
      if (header === null) {
        conn.socket.terminate(); // not one of ours
        return;
      }
      conn.onData = null;
      void serve(conn, header, all.subarray(HEADER_BYTES), reports);
    };
  });
  return { port: listener.port, close: () => listener.stop(true) };
}

export interface Blackhole {
  port: number;
  close(): Promise<void>;
}

/** Starts test/fixtures/blackhole.py and resolves with its port once its queue is full. */
export async function startBlackhole(children: Set<Subprocess>): Promise<Blackhole> {
  const child = Bun.spawn(["python3", join(REPO_ROOT, "test/fixtures/blackhole.py")], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  children.add(child);
  const reader = child.stdout.getReader();
  let text = "";
  const port = await withDeadline(
    (async () => {
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done)
          throw new Error(`blackhole.py exited: ${await new Response(child.stderr).text()}`);
        text += new TextDecoder().decode(value);
      }
      const match = /^port (\d+)$/m.exec(text);
      if (!match) throw new Error(`blackhole.py said ${JSON.stringify(text)}`);
      return Number(match[1]);
    })(),
    10_000,
    "blackhole.py to report its port",
  );
  reader.releaseLock();
  return {
    port,
    async close() {
      child.stdin.end(); // EOF: it exits by itself
      await withDeadline(child.exited, 5_000, "blackhole.py to exit").catch(() => child.kill());
      children.delete(child);
    },
  };
}
