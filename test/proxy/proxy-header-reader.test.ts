// The PROXY header stage over a real pool: whole, split at every byte, followed by the client's
// bytes, malformed, and with no room to hold a split one; the slot always goes back.

import { expect, test } from "bun:test";
import { createPool } from "../../src/pool/index.ts";
import { encodeProxyV1, encodeProxyV2 } from "../../src/protocol/proxy-header.ts";
import { ProxyHeaderReader } from "../../src/proxy/proxy-header-reader.ts";
import { concat } from "../support/bytes.ts";

const pool = createPool({ strategy: "queue-ts", slots: 16, slot_bytes: 1024, checked: true });
const source = { host: "203.0.113.7", port: 51_000 };
const destination = { host: "192.0.2.1", port: 1080 };
const greeting = Uint8Array.of(0x05, 0x01, 0x00);

test.each([
  ["v1", encodeProxyV1(source, destination)],
  ["v2", encodeProxyV2(source, destination)],
])(
  "%s split at every byte: the header, then the client's bytes untouched; the slot returned",
  (_, header) => {
    const stream = concat(header, greeting);
    for (let split = 1; split < stream.length; split++) {
      const budget = { held: 0, max: 4 };
      const reader = new ProxyHeaderReader(pool, budget);
      const first = reader.feed(stream.slice(0, split));
      const result = split >= header.length ? first : reader.feed(stream.slice(split));
      if (split < header.length) expect(first.kind).toBe("need-more");
      expect(result.kind).toBe("header");
      if (result.kind !== "header") continue;
      expect(result.header.source).toEqual(source);
      const rest = split >= header.length ? concat(result.rest, stream.slice(split)) : result.rest;
      expect([...rest]).toEqual([...greeting]);
      expect(budget.held).toBe(0);
    }
    expect(pool.stats().free).toBe(pool.slots);
  },
);

test("a LOCAL header (a balancer's own check) names no client", () => {
  const reader = new ProxyHeaderReader(pool, { held: 0, max: 4 });
  const result = reader.feed(encodeProxyV2());
  expect(result).toMatchObject({ kind: "header", header: { version: 2 } });
  if (result.kind === "header") expect(result.header.source).toBeUndefined();
});

test("malformed: SOCKS bytes where a header belongs, a bad v1 line after a split; the slot returned", () => {
  const budget = { held: 0, max: 4 };
  expect(new ProxyHeaderReader(pool, budget).feed(greeting)).toMatchObject({ kind: "invalid" });
  const reader = new ProxyHeaderReader(pool, budget);
  expect(reader.feed(new TextEncoder().encode("PROXY TCP4 1.2.3.4"))).toEqual({
    kind: "need-more",
  });
  expect(budget.held).toBe(1);
  expect(reader.feed(new TextEncoder().encode(" 5.6.7.8 99999 80\r\n"))).toMatchObject({
    kind: "invalid",
  });
  expect(budget.held).toBe(0);
  expect(pool.stats().free).toBe(pool.slots);
});

test("a split header with the handshakes' share spent: no-room, nothing held", () => {
  const budget = { held: 0, max: 0 };
  const reader = new ProxyHeaderReader(pool, budget);
  expect(reader.feed(encodeProxyV2(source, destination).slice(0, 10))).toEqual({ kind: "no-room" });
  expect(budget.held).toBe(0);
  expect(pool.stats().free).toBe(pool.slots);
});
