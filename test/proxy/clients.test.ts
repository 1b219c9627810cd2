// The per-client table: open connections, new connections per second and failed-login blocks per
// client IP, shared through one SharedArrayBuffer (two tables on one buffer stand for two Workers).

import { expect, test } from "bun:test";
import {
  type ClientLimits,
  ClientTable,
  createClientTableMemory,
} from "../../src/proxy/clients.ts";

const OFF: ClientLimits = {
  connections_max: 0,
  new_per_second: 0,
  auth_failures_max: 0,
  auth_block_ms: 60_000,
};

function table(limits: Partial<ClientLimits>, clock = { now: 1_000_000 }) {
  const memory = createClientTableMemory(100);
  const make = () => new ClientTable(memory, { ...OFF, ...limits }, () => clock.now);
  return { a: make(), b: make(), clock };
}

test("connections per client IP, counted across Workers; IPv4 and its mapped form are one client", () => {
  const { a, b } = table({ connections_max: 3 });
  expect([a.admit("192.0.2.1"), b.admit("192.0.2.1"), a.admit("::ffff:192.0.2.1")]).toEqual([
    null,
    null,
    null,
  ]);
  expect(b.admit("192.0.2.1")).toBe("client_connections");
  expect(a.admit("192.0.2.2")).toBeNull(); // another client is not affected
  b.release("192.0.2.1");
  expect(a.admit("192.0.2.1")).toBeNull();
  expect(b.refused.client_connections).toBe(1);
});

test("new connections per second: a burst of twice the rate, then the rate", () => {
  const { a, clock } = table({ new_per_second: 2 });
  const admitted = () => {
    const verdict = a.admit("2001:db8::7");
    if (verdict === null) a.release("2001:db8::7");
    return verdict;
  };
  expect([admitted(), admitted(), admitted(), admitted()]).toEqual([null, null, null, null]);
  expect(admitted()).toBe("client_rate");
  clock.now += 500; // one token back
  expect(admitted()).toBeNull();
  expect(admitted()).toBe("client_rate");
});

test("too many failed logins block the client for auth_block_ms, then it may try again", () => {
  const { a, b, clock } = table({ auth_failures_max: 3, auth_block_ms: 1_000 });
  expect([a.authFailed("198.51.100.9"), b.authFailed("198.51.100.9")]).toEqual([false, false]);
  expect(a.authFailed("198.51.100.9")).toBe(true);
  expect(b.admit("198.51.100.9")).toBe("client_blocked");
  expect(a.admit("198.51.100.10")).toBeNull();
  clock.now += 1_001;
  expect(b.admit("198.51.100.9")).toBeNull();
});

test("failures outside the window start a new count", () => {
  const { a, clock } = table({ auth_failures_max: 2, auth_block_ms: 1_000 });
  expect(a.authFailed("198.51.100.9")).toBe(false);
  clock.now += 1_500;
  expect(a.authFailed("198.51.100.9")).toBe(false);
  expect(a.authFailed("198.51.100.9")).toBe(true);
});

test("a client without an IP address is not tracked", () => {
  const { a } = table({ connections_max: 1 });
  expect([a.admit(undefined), a.admit(undefined), a.admit("not-an-ip")]).toEqual([
    null,
    null,
    null,
  ]);
});

test("entries are freed when idle: many clients over time never fill the table", () => {
  const { a, clock } = table({ connections_max: 1, new_per_second: 1_000, auth_failures_max: 5 });
  for (let i = 0; i < 20_000; i++) {
    const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    expect(a.admit(host)).toBeNull();
    a.release(host); // its bucket is one token short: the entry stays until it refills…
    clock.now += 1; // …which takes 1 ms at 1,000 per second; a rebuild then drops it
  }
  expect(a.untracked).toBe(0);
});

test("a table full of live clients admits more untracked (fail open), and says so", () => {
  const { a } = table({ connections_max: 1 }); // 1,024 entries: 768 live ones fill it
  for (let i = 0; i < 768; i++) expect(a.admit(`10.0.${i >> 8}.${i & 255}`)).toBeNull();
  expect(a.admit("10.9.9.9")).toBeNull();
  expect(a.untracked).toBe(1);
  // Once clients leave, new ones are tracked again.
  a.release("10.0.0.0");
  expect(a.admit("10.9.9.10")).toBeNull();
  expect(a.untracked).toBe(1);
  expect(a.admit("10.9.9.10")).toBe("client_connections");
});

test("with nothing that can act, the table is off: no lock on accept for a proxy without logins", () => {
  const memory = createClientTableMemory(100);
  const throttleOnly = { ...OFF, auth_failures_max: 10 };
  expect(new ClientTable(memory, throttleOnly, Date.now, false).enabled).toBe(false);
  expect(new ClientTable(memory, throttleOnly, Date.now, true).enabled).toBe(true);
  expect(new ClientTable(memory, { ...OFF, connections_max: 5 }, Date.now, false).enabled).toBe(
    true,
  );
  expect(new ClientTable(memory, OFF, Date.now, true).enabled).toBe(false);
});
