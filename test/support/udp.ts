// UDP for tests: a client socket that queues what it receives, a DNS-shaped echo target, and the
// SOCKS5 UDP header and UDP ASSOCIATE bytes. Not the proxy.

import type { udp } from "bun";
import { connectTcp } from "./sockets.ts";
import type { Conn } from "./conn.ts";
import { DEADLINE_MS, withDeadline } from "./wait.ts";

export interface Datagram {
  data: Uint8Array;
  port: number;
  address: string;
}

const openSockets = new Set<{ close(): void }>();

/** A UDP socket that keeps every datagram it receives, in order, for next(). */
export class UdpPeer {
  readonly received: Datagram[] = [];
  private readonly waiters = new Set<() => void>();
  private taken = 0;

  constructor(readonly socket: udp.Socket<"uint8array">) {}

  static async open(host = "127.0.0.1", port = 0): Promise<UdpPeer> {
    let peer: UdpPeer | null = null;
    const socket = await Bun.udpSocket({
      hostname: host,
      port,
      binaryType: "uint8array",
      socket: {
        data: (_socket, data, fromPort, address) => {
          peer!.received.push({ data, port: fromPort, address });
          for (const wake of peer!.waiters) wake();
        },
      },
    });
    peer = new UdpPeer(socket);
    openSockets.add(peer);
    return peer;
  }

  get port(): number {
    return this.socket.port;
  }

  send(data: Uint8Array, port: number, address: string): void {
    if (!this.socket.send(data, port, address)) throw new Error("UDP send would block");
  }

  /** The next datagram not yet taken; fails after `ms`. */
  next(ms = DEADLINE_MS): Promise<Datagram> {
    const ready = () => this.received.length > this.taken;
    const take = () => this.received[this.taken++]!;
    if (ready()) return Promise.resolve(take());
    return withDeadline(
      new Promise<Datagram>((resolve) => {
        const wake = () => {
          if (!ready()) return;
          this.waiters.delete(wake);
          resolve(take());
        };
        this.waiters.add(wake);
      }),
      ms,
      `a datagram on UDP port ${this.port}`,
    );
  }

  close(): void {
    this.socket.close();
    openSockets.delete(this);
  }
}

/**
 * A DNS-shaped echo target: answers each datagram with the same bytes, the QR bit set in the
 * flags (byte 2) as a DNS response would, so an answer is told from the query. Counts queries.
 */
export async function startUdpDns(host = "127.0.0.1"): Promise<UdpPeer> {
  let peer: UdpPeer | null = null;
  const socket = await Bun.udpSocket({
    hostname: host,
    port: 0,
    binaryType: "uint8array",
    socket: {
      data: (sock, data, port, address) => {
        peer!.received.push({ data, port, address });
        const answer = data.slice();
        if (answer.length > 2) answer[2]! |= 0x80;
        sock.send(answer, port, address);
      },
    },
  });
  peer = new UdpPeer(socket);
  openSockets.add(peer);
  return peer;
}

/** A DNS query for `name` (type A, class IN) with the given ID. */
export function dnsQuery(id: number, name: string): Uint8Array {
  const labels = name
    .split(".")
    .flatMap((label) => [label.length, ...new TextEncoder().encode(label)]);
  return Uint8Array.from([
    id >> 8,
    id & 0xff,
    0x01,
    0x00,
    0,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    ...labels,
    0,
    0,
    1,
    0,
    1,
  ]);
}

/** The SOCKS5 UDP request header (RFC 1928 §7) + payload. `host`: IPv4, IPv6 or a domain. */
export function udpDatagram(host: string, port: number, payload: Uint8Array, frag = 0): Uint8Array {
  let address: number[];
  if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) address = [1, ...host.split(".").map(Number)];
  else if (host.includes(":")) address = [4, ...ipv6Bytes(host)];
  else address = [3, host.length, ...new TextEncoder().encode(host)];
  return Uint8Array.from([0, 0, frag, ...address, port >> 8, port & 0xff, ...payload]);
}

function ipv6Bytes(host: string): number[] {
  const [head, tail] = host.split("::") as [string, string | undefined];
  const groups = (part: string | undefined) =>
    part ? part.split(":").map((g) => Number.parseInt(g, 16)) : [];
  const left = groups(head);
  const right = groups(tail);
  const all = [...left, ...new Array(8 - left.length - right.length).fill(0), ...right];
  return all.flatMap((group) => [group >> 8, group & 0xff]);
}

/** Splits a datagram from the relay into its header's address and the payload. */
export function parseUdpDatagram(datagram: Uint8Array): {
  frag: number;
  atyp: number;
  host: string;
  port: number;
  payload: Uint8Array;
} {
  const atyp = datagram[3]!;
  let at = 4;
  let host: string;
  if (atyp === 1) {
    host = [...datagram.subarray(4, 8)].join(".");
    at = 8;
  } else if (atyp === 4) {
    const words: string[] = [];
    for (let i = 0; i < 16; i += 2)
      words.push(((datagram[4 + i]! << 8) | datagram[5 + i]!).toString(16));
    host = words.join(":");
    at = 20;
  } else {
    const length = datagram[4]!;
    host = new TextDecoder().decode(datagram.subarray(5, 5 + length));
    at = 5 + length;
  }
  const port = (datagram[at]! << 8) | datagram[at + 1]!;
  return { frag: datagram[2]!, atyp, host, port, payload: datagram.subarray(at + 2) };
}

/**
 * Opens a SOCKS5 UDP association (no auth): greeting, then UDP ASSOCIATE declaring `declaredPort`
 * (0: not known). Returns the control connection and the relay's announced address.
 */
export async function udpAssociate(
  proxyHost: string,
  proxyPort: number,
  declaredPort = 0,
): Promise<{ control: Conn; relay: { host: string; port: number }; reply: Uint8Array }> {
  const control = await connectTcp(proxyHost, proxyPort);
  await control.write(Uint8Array.of(5, 1, 0));
  const method = await control.read(2);
  if (method[1] !== 0) throw new Error(`method ${method[1]}`);
  await control.write(
    Uint8Array.of(5, 3, 0, 1, 0, 0, 0, 0, declaredPort >> 8, declaredPort & 0xff),
  );
  const head = await control.read(4);
  if (head[1] !== 0) return { control, relay: { host: "", port: 0 }, reply: head };
  const rest = await control.read(head[3] === 4 ? 18 : 6);
  const reply = Uint8Array.from([...head, ...rest]);
  const parsed = parseUdpDatagram(Uint8Array.from([0, 0, 0, ...reply.subarray(3)]));
  return { control, relay: { host: parsed.host, port: parsed.port }, reply };
}

/** Closes every UDP socket a test left open. */
export function closeOpenUdpSockets(): void {
  for (const socket of [...openSockets]) socket.close();
}
