// SOCKS5 UDP ASSOCIATE against the real proxy, in-process: PySocks sending a DNS-shaped query
// through an association, and raw datagrams for each address type (IPv4, domain, IPv6), a foreign
// sender, a fragment, a denied destination, the destinations limit, a flood with too few pool slots,
// the control connection closing and the idle timeout. Not the header codec (test/protocol/udp.test.ts).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { spawnProxy } from "../support/proxy-process.ts";
import { collect, requireTool } from "../support/spawn.ts";
import {
  dnsQuery,
  parseUdpDatagram,
  startUdpDns,
  type UdpPeer,
  UdpPeer as Peer,
  udpAssociate,
  udpDatagram,
} from "../support/udp.ts";
import { waitFor, withDeadline } from "../support/wait.ts";

afterAll(cleanup);

/** Byte strings as written: each character one byte (0x81 stays one byte, unlike UTF-8). */
const raw = (chars: string) => Uint8Array.from(chars, (char) => char.charCodeAt(0));
const str = (data: Uint8Array) => String.fromCharCode(...data);

let handle: TestProxy;
let dns: UdpPeer;

beforeAll(async () => {
  handle = await startTestProxy({
    udp: { enabled: true },
    access: { rules: [{ name: "no-dot-9", action: "deny", destinations: ["127.0.0.9"] }] },
  });
  dns = await startUdpDns("127.0.0.1");
});

afterAll(async () => {
  await handle.close();
  dns.close();
});

/** The association's datagrams are gone and its slots back: nothing open, nothing held. */
async function expectIdle(proxy: TestProxy): Promise<void> {
  await waitFor(
    () => proxy.counters().udp.open === 0 && proxy.proxy.stats().pool.in_use === 0,
    () => `no association open; counters ${JSON.stringify(proxy.counters().udp)}`,
  );
}

describe("a real client: PySocks", () => {
  test("socksocket(SOCK_DGRAM) sends a DNS query through the association and gets the answer", async () => {
    const python = requireTool("python3");
    // Debian's python3-socks is for the system python3; prefer it when another python3 is first.
    const interpreter = Bun.which("python3", { PATH: "/usr/bin" }) ?? python;
    const script = `
import socket, socks, sys
s = socks.socksocket(socket.AF_INET, socket.SOCK_DGRAM)
s.set_proxy(socks.SOCKS5, "127.0.0.1", ${handle.socksPort})
s.settimeout(5)
s.sendto(bytes.fromhex(sys.argv[1]), ("127.0.0.1", ${dns.port}))
data, source = s.recvfrom(512)
print(data.hex(), source[0], source[1])
`;
    const query = dnsQuery(0x1234, "example.test");
    const child = Bun.spawn([interpreter, "-c", script, Buffer.from(query).toString("hex")], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    });
    const result = await withDeadline(collect(child), 15_000, "the PySocks client");
    expect(result.stderr).toBe("");
    const [hex, host, port] = result.stdout.trim().split(" ");
    const answer = Buffer.from(hex!, "hex");
    expect([answer[0], answer[1], answer[2]]).toEqual([0x12, 0x34, 0x81]); // same ID, QR set
    expect(answer.subarray(3)).toEqual(Buffer.from(query.subarray(3)));
    expect(`${host}:${port}`).toBe(`127.0.0.1:${dns.port}`); // the reply's header named the source
    await handle.waitForConnectionLog(
      (record) => String(record.target).startsWith("udp:") && record.datagrams_up === 1,
      "the association's line",
    );
  });
});

describe("raw datagrams", () => {
  test("ATYP IPv4: relayed both ways; the answer's header names the destination", async () => {
    const client = await Peer.open();
    const { control, relay, reply } = await udpAssociate(
      "127.0.0.1",
      handle.socksPort,
      client.port,
    );
    expect([reply[0], reply[1], reply[3]]).toEqual([5, 0, 1]);
    expect(relay.host).toBe("127.0.0.1"); // the TCP listener's address, never a wildcard
    client.send(
      udpDatagram("127.0.0.1", dns.port, raw("\x00\x07\x01\x00ipv4")),
      relay.port,
      relay.host,
    );
    const answer = parseUdpDatagram((await client.next()).data);
    expect(answer).toMatchObject({ frag: 0, atyp: 1, host: "127.0.0.1", port: dns.port });
    expect(str(answer.payload)).toBe("\x00\x07\x81\x00ipv4");
    const before = handle.counters().udp;
    expect(before.datagrams_up).toBeGreaterThanOrEqual(1);
    control.end();
    await expectIdle(handle);
  });

  test("ATYP domain: resolved by the proxy (localhost), answered with the address it came from", async () => {
    const client = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, client.port);
    client.send(
      udpDatagram("localhost", dns.port, raw("\x00\x08\x01\x00name")),
      relay.port,
      relay.host,
    );
    const answer = parseUdpDatagram((await client.next()).data);
    expect(answer).toMatchObject({ atyp: 1, host: "127.0.0.1", port: dns.port });
    expect(str(answer.payload)).toBe("\x00\x08\x81\x00name");
    control.end();
    await expectIdle(handle);
  });

  test("ATYP IPv6: a listener on [::1] binds its relay on ::1", async () => {
    const v6 = await startTestProxy({ socks: { listen: "[::1]:0" }, udp: { enabled: true } });
    const dns6 = await startUdpDns("::1");
    try {
      const client = await Peer.open("::1");
      const { control, relay, reply } = await udpAssociate("::1", v6.socksPort, client.port);
      expect(reply[3]).toBe(4);
      expect(relay.host).toBe("0:0:0:0:0:0:0:1");
      client.send(udpDatagram("::1", dns6.port, raw("\x00\x09\x01\x00six")), relay.port, "::1");
      const answer = parseUdpDatagram((await client.next()).data);
      expect(answer).toMatchObject({ atyp: 4, host: "0:0:0:0:0:0:0:1", port: dns6.port });
      expect(str(answer.payload)).toBe("\x00\x09\x81\x00six");
      control.end();
      await expectIdle(v6);
    } finally {
      dns6.close();
      await v6.close();
    }
  });

  test("a dual-stack listener ([::]): the reply names the IPv4 address the client came to", async () => {
    const dual = await startTestProxy({
      socks: { listen: "[::]:0", allow_open_proxy: true },
      udp: { enabled: true },
    });
    try {
      const client = await Peer.open();
      const { control, relay, reply } = await udpAssociate(
        "127.0.0.1",
        dual.socksPort,
        client.port,
      );
      expect([reply[1], reply[3], relay.host]).toEqual([0, 1, "127.0.0.1"]);
      client.send(
        udpDatagram("127.0.0.1", dns.port, raw("\x00\x0e\x01\x00dual")),
        relay.port,
        relay.host,
      );
      const answer = parseUdpDatagram((await client.next()).data);
      expect(answer).toMatchObject({ atyp: 1, host: "127.0.0.1", port: dns.port });
      expect(str(answer.payload)).toBe("\x00\x0e\x81\x00dual");
      control.end();
      await expectIdle(dual);
    } finally {
      await dual.close();
    }
  });

  test("a datagram from another port than the declared one is dropped and counted", async () => {
    const client = await Peer.open();
    const stranger = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, client.port);
    const queries = dns.received.length;
    const foreign = handle.counters().udp_dropped.foreign;
    stranger.send(
      udpDatagram("127.0.0.1", dns.port, raw("\x00\x0a\x01\x00x")),
      relay.port,
      relay.host,
    );
    await waitFor(() => handle.counters().udp_dropped.foreign === foreign + 1, "the foreign drop");
    // The client itself still gets through, and the target never saw the stranger's datagram.
    client.send(
      udpDatagram("127.0.0.1", dns.port, raw("\x00\x0b\x01\x00y")),
      relay.port,
      relay.host,
    );
    expect(str(parseUdpDatagram((await client.next()).data).payload)).toBe("\x00\x0b\x81\x00y");
    expect(dns.received.length).toBe(queries + 1);
    control.end();
    await expectIdle(handle);
  });

  test("port 0 declared: the first datagram fixes the client's port; another port is foreign", async () => {
    const client = await Peer.open();
    const second = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, 0);
    client.send(
      udpDatagram("127.0.0.1", dns.port, raw("\x00\x0c\x01\x00a")),
      relay.port,
      relay.host,
    );
    await client.next();
    const foreign = handle.counters().udp_dropped.foreign;
    second.send(
      udpDatagram("127.0.0.1", dns.port, raw("\x00\x0d\x01\x00b")),
      relay.port,
      relay.host,
    );
    await waitFor(
      () => handle.counters().udp_dropped.foreign === foreign + 1,
      "the second port's drop",
    );
    control.end();
    await expectIdle(handle);
  });

  test("FRAG ≠ 0 is dropped and counted; a malformed header too", async () => {
    const client = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, client.port);
    const queries = dns.received.length;
    const { fragmented, malformed } = handle.counters().udp_dropped;
    client.send(udpDatagram("127.0.0.1", dns.port, raw("frag"), 1), relay.port, relay.host);
    client.send(Uint8Array.of(0, 0, 0, 9, 1, 2), relay.port, relay.host); // ATYP 09
    client.send(Uint8Array.of(0, 0, 0, 1, 127), relay.port, relay.host); // cut short
    await waitFor(
      () =>
        handle.counters().udp_dropped.fragmented === fragmented + 1 &&
        handle.counters().udp_dropped.malformed === malformed + 2,
      () => `the drops; ${JSON.stringify(handle.counters().udp_dropped)}`,
    );
    expect(dns.received.length).toBe(queries);
    control.end();
    await expectIdle(handle);
  });

  test("an access rule applies to each datagram's destination", async () => {
    const client = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, client.port);
    const denied = handle.counters().udp_dropped.denied;
    client.send(udpDatagram("127.0.0.9", dns.port, raw("no")), relay.port, relay.host);
    client.send(udpDatagram("127.0.0.9", dns.port, raw("no")), relay.port, relay.host);
    await waitFor(() => handle.counters().udp_dropped.denied === denied + 2, "two denied drops");
    expect(
      handle.logs.some((line) => line.msg === "access denied" && line.rule === "no-dot-9"),
    ).toBe(true);
    control.end();
    await expectIdle(handle);
  });

  test("closing the control connection ends the association: its port is free again", async () => {
    const client = await Peer.open();
    const { control, relay } = await udpAssociate("127.0.0.1", handle.socksPort, client.port);
    expect(handle.counters().udp.open).toBe(1);
    control.end();
    await expectIdle(handle);
    const rebound = await Peer.open("127.0.0.1", relay.port); // throws if still bound
    rebound.close();
  });
});

describe("limits", () => {
  test("idle_timeout_ms: an association with no datagrams is closed with its connection", async () => {
    const idle = await startTestProxy({ udp: { enabled: true, idle_timeout_ms: 150 } });
    try {
      const client = await Peer.open();
      const { control, relay } = await udpAssociate("127.0.0.1", idle.socksPort, client.port);
      expect(relay.port).toBeGreaterThan(0);
      await control.readToEnd(); // the proxy closes it
      const line = await idle.waitForConnectionLog(
        (record) => record.outcome === "idle_timeout",
        "the idle association",
      );
      expect(String(line.target)).toStartWith("udp:");
      await expectIdle(idle);
    } finally {
      await idle.close();
    }
  });

  test("destinations_max and associations_max", async () => {
    const small = await startTestProxy({
      udp: { enabled: true, destinations_max: 1, associations_max: 1 },
    });
    const other = await startUdpDns();
    try {
      const client = await Peer.open();
      const { control, relay } = await udpAssociate("127.0.0.1", small.socksPort, client.port);
      client.send(
        udpDatagram("127.0.0.1", dns.port, raw("\x00\x01\x01\x00one")),
        relay.port,
        relay.host,
      );
      await client.next();
      client.send(udpDatagram("127.0.0.1", other.port, raw("two")), relay.port, relay.host);
      await waitFor(() => small.counters().udp_dropped.destinations === 1, "the destinations drop");
      // A second association is over the global limit: 01, logged as a limit.
      const second = await udpAssociate("127.0.0.1", small.socksPort, 0);
      expect([second.reply[0], second.reply[1]]).toEqual([5, 1]);
      expect(small.counters().udp.refused).toBe(1);
      await small.waitForConnectionLog((record) => record.outcome === "limit", "the refusal");
      control.end();
      await expectIdle(small);
    } finally {
      other.close();
      await small.close();
    }
  });

  test("datagrams_per_second: past the rate (a burst of one second's worth), dropped and counted", async () => {
    const limited = await startTestProxy({ udp: { enabled: true, datagrams_per_second: 2 } });
    try {
      const client = await Peer.open();
      const { control, relay } = await udpAssociate("127.0.0.1", limited.socksPort, client.port);
      for (let i = 0; i < 5; i++) {
        client.send(
          udpDatagram("127.0.0.1", dns.port, Uint8Array.of(0, i, 1, 0)),
          relay.port,
          relay.host,
        );
      }
      await waitFor(
        () => limited.counters().udp.datagrams_up + limited.counters().udp_dropped.rate === 5,
        () => `five datagrams accounted for; ${JSON.stringify(limited.counters())}`,
      );
      expect(limited.counters().udp.datagrams_up).toBe(2);
      control.end();
      await expectIdle(limited);
    } finally {
      await limited.close();
    }
  });

  test("a flood held while a name resolves: bounded by the pool, the rest dropped and counted", async () => {
    const tiny = await startTestProxy({
      udp: { enabled: true },
      pool: { slots: 16, strategy: "queue", local_batch: 8, handshake_share_percent: 25 },
    });
    try {
      const client = await Peer.open();
      const { control, relay } = await udpAssociate("127.0.0.1", tiny.socksPort, client.port);
      const sent = 100; // well inside the kernel's receive buffer, so none is lost before the proxy
      // All in one tick: the proxy (this process) reads them before the name's lookup can finish.
      for (let i = 0; i < sent; i++) {
        client.send(
          udpDatagram("localhost", dns.port, Uint8Array.of(0, i, 1, 0)),
          relay.port,
          relay.host,
        );
      }
      await waitFor(
        () => {
          const counts = tiny.counters();
          return counts.udp.datagrams_up + counts.udp_dropped.pool_full === sent;
        },
        () => `every datagram relayed or dropped; ${JSON.stringify(tiny.counters())}`,
      );
      const counts = tiny.counters();
      // The lookup completes only after the proxy has read the burst: what waited for it is what
      // UDP's share of the slots could hold (25 % of 16: 4), and the rest was dropped as it came,
      // not queued in memory.
      expect(counts.udp.datagrams_up).toBeLessThanOrEqual(4);
      expect(counts.udp_dropped.pool_full).toBeGreaterThanOrEqual(sent - 4);
      expect(tiny.proxy.stats().pool.in_use).toBe(0); // every held slot came back
      control.end();
      await expectIdle(tiny);
    } finally {
      await tiny.close();
    }
  });
});

describe("the real program", () => {
  test("--workers 2 --udp: associations on either Worker relay; /metrics counts them", async () => {
    const proxy = await spawnProxy(["--socks", "127.0.0.1:0", "--workers", "2", "--udp"]);
    try {
      for (let round = 0; round < 4; round++) {
        const client = await Peer.open();
        const { control, relay } = await udpAssociate("127.0.0.1", proxy.socksPort, client.port);
        client.send(
          udpDatagram("127.0.0.1", dns.port, Uint8Array.of(0, round, 1, 0)),
          relay.port,
          relay.host,
        );
        expect([...(await client.next()).data.subarray(10)]).toEqual([0, round, 0x81, 0]);
        control.end();
        client.close();
      }
      // Polled: the counters are summed from both Workers' blocks when /metrics is read.
      const metrics = async () => await (await fetch(`http://${proxy.admin}/metrics`)).text();
      let text = await metrics();
      for (let tries = 0; !text.includes("sockpool_udp_associations_open 0"); tries++) {
        if (tries > 500) throw new Error(`associations still open in /metrics:\n${text}`);
        await Bun.sleep(20);
        text = await metrics();
      }
      expect(text).toContain("sockpool_udp_associations_total 4");
      expect(text).toContain('sockpool_udp_datagrams_total{direction="up"} 4');
      expect(text).toContain('sockpool_udp_datagrams_total{direction="down"} 4');
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
  });
});
