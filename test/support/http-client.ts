// HTTP CONNECT from the client's side, for tests: send the request head, read the response head
// byte by byte (so nothing of the relayed stream after it is consumed). Not the proxy's parser.

import { text } from "./bytes.ts";
import type { Conn } from "./conn.ts";
import { connectTcp } from "./sockets.ts";

/** Reads a response head up to and including its blank line, and not one byte more. */
export async function readResponseHead(conn: Conn): Promise<string> {
  let head = "";
  while (!head.endsWith("\r\n\r\n")) head += text(await conn.read(1));
  return head;
}

/** Connects through an HTTP CONNECT listener; returns the tunnel once the answer is 200. */
export async function httpConnect(
  proxyPort: number,
  host: string,
  port: number,
  extraHeaders = "",
): Promise<{ conn: Conn; head: string }> {
  const conn = await connectTcp("127.0.0.1", proxyPort);
  const authority = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
  await conn.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${extraHeaders}\r\n`);
  const head = await readResponseHead(conn);
  if (!head.startsWith("HTTP/1.1 200 ")) {
    conn.end();
    throw new Error(`CONNECT refused: ${head.split("\r\n")[0]}`);
  }
  return { conn, head };
}
