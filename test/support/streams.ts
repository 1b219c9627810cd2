// Seeded byte streams over a Conn: generate-and-send, digest until FIN. Not the socket (conn.ts).

import type { Conn } from "./conn.ts";
import { Prng } from "./prng.ts";

export interface StreamDigest {
  bytes: number;
  sha256: string;
}

/** Sends `total` seeded pseudo-random bytes on `conn` with backpressure; returns their digest. */
export async function sendGenerated(
  conn: Conn,
  total: number,
  seed: number,
  ms = 60_000,
): Promise<StreamDigest> {
  const prng = new Prng(seed);
  const hasher = new Bun.CryptoHasher("sha256");
  const blockBytes = 256 * 1024;
  let queued = 0;
  const started = performance.now();
  while (queued < total) {
    const block = new Uint8Array(Math.min(blockBytes, total - queued));
    prng.fill(block);
    hasher.update(block);
    conn.send(block);
    queued += block.length;
    if (conn.closed) throw new Error(`socket closed after ${queued} of ${total} bytes queued`);
    if (conn.pendingBytes > 0) {
      await conn.flushed(Math.max(1, ms - (performance.now() - started)));
    }
  }
  return { bytes: queued, sha256: hasher.digest("hex") };
}

/** Streams everything `conn` receives (queued bytes first) into a digest until the peer's FIN. */
export async function digestToEnd(conn: Conn, ms = 60_000): Promise<StreamDigest> {
  const hasher = new Bun.CryptoHasher("sha256");
  let count = 0;
  conn.streamTo((chunk) => {
    hasher.update(chunk);
    count += chunk.length;
  });
  await conn.waitEnd(ms, `the peer to close (digested ${count} bytes)`);
  return { bytes: count, sha256: hasher.digest("hex") };
}
