// A raw SOCKS5 client (RFC 1928, RFC 1929) writing the bytes itself. Not a SOCKS library: a test can send any bytes.

import { bytes, concat, text, toHex } from "./bytes.ts";
import type { Conn } from "./conn.ts";
import { connectTcp } from "./sockets.ts";
import { DEADLINE_MS } from "./wait.ts";

export const SOCKS = {
  version: 0x05,
  authVersion: 0x01,
  noAuth: 0x00,
  password: 0x02,
  noAcceptable: 0xff,
  connect: 0x01,
  bind: 0x02,
  udpAssociate: 0x03,
  ipv4: 0x01,
  domain: 0x03,
  ipv6: 0x04,
} as const;

/** Reply codes, as docs/architecture.md maps them. */
export const REPLY = {
  succeeded: 0x00,
  general: 0x01,
  ruleset: 0x02,
  networkUnreachable: 0x03,
  hostUnreachable: 0x04,
  refused: 0x05,
  timeout: 0x06,
  commandNotSupported: 0x07,
  addressTypeNotSupported: 0x08,
} as const;

/** +----+----------+----------+ : VER NMETHODS METHODS */
export function encodeGreeting(methods: readonly number[]): Uint8Array {
  return Uint8Array.from([SOCKS.version, methods.length, ...methods]);
}

/** +----+------+----------+------+----------+ : VER=01 ULEN UNAME PLEN PASSWD */
export function encodeAuth(user: string, pass: string): Uint8Array {
  const name = bytes(user);
  const secret = bytes(pass);
  return concat(
    Uint8Array.from([SOCKS.authVersion, name.length]),
    name,
    Uint8Array.from([secret.length]),
    secret,
  );
}

function ipv4Bytes(host: string): Uint8Array | null {
  const parts = host.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part) && Number(part) < 256))
    return null;
  return Uint8Array.from(parts.map(Number));
}

function ipv6Bytes(host: string): Uint8Array | null {
  if (!host.includes(":")) return null;
  const [head, tail, extra] = host.split("::");
  if (extra !== undefined) return null;
  const groups = (part: string | undefined) => (part ? part.split(":") : []);
  const left = groups(head);
  const right = groups(tail);
  const missing = 8 - left.length - right.length;
  if (tail === undefined ? missing !== 0 : missing < 1) return null;
  const all = [...left, ...Array<string>(tail === undefined ? 0 : missing).fill("0"), ...right];
  const out = new Uint8Array(16);
  for (const [index, group] of all.entries()) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    const value = Number.parseInt(group, 16);
    out[2 * index] = value >> 8;
    out[2 * index + 1] = value & 0xff;
  }
  return out;
}

/** ATYP + DST.ADDR for an IPv4 literal, an IPv6 literal or a name. */
export function encodeAddress(host: string): Uint8Array {
  const v4 = ipv4Bytes(host);
  if (v4) return concat(Uint8Array.from([SOCKS.ipv4]), v4);
  const v6 = ipv6Bytes(host);
  if (v6) return concat(Uint8Array.from([SOCKS.ipv6]), v6);
  const name = bytes(host);
  return concat(Uint8Array.from([SOCKS.domain, name.length]), name);
}

/** +----+-----+-------+------+----------+----------+ : VER CMD RSV ATYP DST.ADDR DST.PORT */
export function encodeRequest(host: string, port: number, command: number = SOCKS.connect) {
  return concat(
    Uint8Array.from([SOCKS.version, command, 0x00]),
    encodeAddress(host),
    Uint8Array.from([port >> 8, port & 0xff]),
  );
}

export interface SocksReply {
  version: number;
  code: number;
  atyp: number;
  /** BND.ADDR as text: dotted quad, compressed-free IPv6 groups, or the name. */
  host: string;
  port: number;
  raw: Uint8Array;
}

function formatIpv6(addr: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((addr[i]! << 8) | addr[i + 1]!).toString(16));
  // Compress the longest run of zero groups, as the usual text form does.
  let bestStart = -1;
  let bestLength = 0;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === "0") length++;
    if (length > bestLength && length > 1) {
      bestStart = start;
      bestLength = length;
    }
  }
  if (bestStart < 0) return groups.join(":");
  return `${groups.slice(0, bestStart).join(":")}::${groups.slice(bestStart + bestLength).join(":")}`;
}

/** Reads one complete reply: VER REP RSV ATYP BND.ADDR BND.PORT. */
export async function readReply(conn: Conn, ms = DEADLINE_MS): Promise<SocksReply> {
  const head = await conn.read(4, ms);
  const atyp = head[3]!;
  let addr: Uint8Array;
  let host: string;
  if (atyp === SOCKS.ipv4) {
    addr = await conn.read(4, ms);
    host = Array.from(addr).join(".");
  } else if (atyp === SOCKS.ipv6) {
    addr = await conn.read(16, ms);
    host = formatIpv6(addr);
  } else if (atyp === SOCKS.domain) {
    const length = await conn.read(1, ms);
    const name = await conn.read(length[0]!, ms);
    addr = concat(length, name);
    host = text(name);
  } else {
    throw new Error(`reply with unknown ATYP 0x${atyp.toString(16)} (head ${toHex(head)})`);
  }
  const portBytes = await conn.read(2, ms);
  return {
    version: head[0]!,
    code: head[1]!,
    atyp,
    host,
    port: (portBytes[0]! << 8) | portBytes[1]!,
    raw: concat(head, addr, portBytes),
  };
}

export interface Credentials {
  user: string;
  pass: string;
}

export interface HandshakeOptions {
  auth?: Credentials;
  command?: number;
}

/** Runs greeting (+ RFC 1929 auth) + request on `conn` and returns the reply, success or not. */
export async function socksHandshake(
  conn: Conn,
  host: string,
  port: number,
  options: HandshakeOptions = {},
): Promise<SocksReply> {
  const method = options.auth ? SOCKS.password : SOCKS.noAuth;
  await conn.write(encodeGreeting([method]));
  const choice = await conn.read(2);
  if (choice[0] !== SOCKS.version || choice[1] !== method) {
    throw new Error(
      `method selection: expected 05 ${toHex(Uint8Array.of(method))}, got ${toHex(choice)}`,
    );
  }
  if (options.auth) {
    await conn.write(encodeAuth(options.auth.user, options.auth.pass));
    const status = await conn.read(2);
    if (status[0] !== SOCKS.authVersion || status[1] !== 0x00) {
      throw new Error(`auth: expected 01 00, got ${toHex(status)}`);
    }
  }
  await conn.write(encodeRequest(host, port, options.command ?? SOCKS.connect));
  return await readReply(conn);
}

export class SocksReplyError extends Error {
  constructor(readonly reply: SocksReply) {
    super(`SOCKS reply 0x${reply.code.toString(16).padStart(2, "0")} (raw ${toHex(reply.raw)})`);
    this.name = "SocksReplyError";
  }
}

/** Connects through the proxy; returns the relayed connection once the reply says success. */
export async function socksConnect(
  proxyPort: number,
  host: string,
  port: number,
  options: HandshakeOptions & { proxyHost?: string } = {},
): Promise<{ conn: Conn; reply: SocksReply }> {
  const conn = await connectTcp(options.proxyHost ?? "127.0.0.1", proxyPort);
  const reply = await socksHandshake(conn, host, port, options);
  if (reply.code !== REPLY.succeeded) {
    conn.end();
    throw new SocksReplyError(reply);
  }
  return { conn, reply };
}

/** Connects, sends `message`, reads it back (an echo target), closes. Returns what came back. */
export async function echoThrough(proxyPort: number, targetPort: number, message: string) {
  const { conn } = await socksConnect(proxyPort, "127.0.0.1", targetPort);
  try {
    await conn.write(message);
    return text(await conn.read(bytes(message).length));
  } finally {
    conn.end();
  }
}
