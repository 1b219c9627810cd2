// The fixtures on their own, without the proxy: when a proxy test fails, these say whether the
// targets and the raw client can be trusted. Not a test of sockpool.

import { afterAll, describe, expect, test } from "bun:test";
import { MIB, sha256, text, toHex } from "../support/bytes.ts";
import { cleanup } from "../support/cleanup.ts";
import { testSeed } from "../support/seed.ts";
import { connectTcp } from "../support/sockets.ts";
import { encodeAuth, encodeGreeting, encodeRequest } from "../support/socks-client.ts";
import { digestToEnd, sendGenerated } from "../support/streams.ts";
import {
  onBothLoopbacks,
  refusedPort,
  startAnswerAfterFin,
  startBanner,
  startBulk,
  startEcho,
} from "../support/targets.ts";

afterAll(cleanup);

describe("wire encoders", () => {
  test("greeting, auth and requests match RFC 1928/1929 byte layouts", () => {
    expect(toHex(encodeGreeting([0x00, 0x02]))).toBe("05 02 00 02");
    expect(toHex(encodeAuth("al", "pw1"))).toBe("01 02 61 6c 03 70 77 31");
    expect(toHex(encodeRequest("127.0.0.1", 0x1f90))).toBe("05 01 00 01 7f 00 00 01 1f 90");
    expect(toHex(encodeRequest("::1", 80))).toBe(
      "05 01 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 50",
    );
    expect(toHex(encodeRequest("fe80::1:2", 80))).toBe(
      "05 01 00 04 fe 80 00 00 00 00 00 00 00 00 00 00 00 01 00 02 00 50",
    );
    expect(toHex(encodeRequest("ab.c", 443, 0x02))).toBe("05 02 00 03 04 61 62 2e 63 01 bb");
  });
});

describe("targets, reached directly", () => {
  test("echo returns the bytes and answers FIN with FIN", async () => {
    const echo = startEcho();
    const conn = await connectTcp("127.0.0.1", echo.port);
    await conn.write("hello");
    expect(text(await conn.read(5))).toBe("hello");
    conn.shutdown();
    expect((await conn.readToEnd()).length).toBe(0);
    echo.close();
  });

  test("banner arrives before the client sends anything", async () => {
    const banner = startBanner("220 ready\r\n");
    const conn = await connectTcp("127.0.0.1", banner.port);
    expect(text(await conn.read(11))).toBe("220 ready\r\n");
    conn.end();
    banner.close();
  });

  test("answer-after-FIN digests the request and replies only after FIN", async () => {
    const target = startAnswerAfterFin(new TextEncoder().encode("TRAILER"));
    const conn = await connectTcp("127.0.0.1", target.port);
    await conn.write("some request");
    expect(conn.available).toBe(0);
    conn.shutdown();
    const answer = text(await conn.readToEnd());
    expect(answer).toBe(`${sha256(new TextEncoder().encode("some request"))} 12\nTRAILER`);
    target.close();
  });

  test("bulk target sends and digests 8 MiB both ways", async () => {
    const seed = testSeed("fixtures bulk");
    const target = startBulk(8 * MIB, seed);
    const conn = await connectTcp("127.0.0.1", target.port);
    const received = digestToEnd(conn);
    const sent = await sendGenerated(conn, 8 * MIB, seed ^ 0x5555);
    await conn.shutdownAfterFlush();
    const result = await target.results[0]!;
    expect(result.received).toEqual(sent);
    expect(await received).toEqual(result.sent);
    expect(result.sent.bytes).toBe(8 * MIB);
    target.close();
  });

  test("refusedPort refuses", async () => {
    const port = refusedPort();
    await expect(connectTcp("127.0.0.1", port)).rejects.toThrow();
  });

  test("onBothLoopbacks serves one port on 127.0.0.1 and ::1", async () => {
    const both = onBothLoopbacks((host, port) => startEcho(host, port));
    for (const host of ["127.0.0.1", "::1"]) {
      const conn = await connectTcp(host, both.port);
      await conn.write(host);
      expect(text(await conn.read(host.length))).toBe(host);
      conn.end();
    }
    both.close();
  });
});
