// The access rules as a pure decision: first match wins, the built-in denials, domains before
// resolution and addresses after. No sockets: the pipeline's use of it is in test/integration.

import { describe, expect, test } from "bun:test";
import {
  type AccessConfig,
  type AccessRequest,
  AccessPolicy,
  type RuleConfig,
} from "../../src/policy/access.ts";

const BASE: AccessRequest = {
  client: "198.51.100.7",
  user: undefined,
  host: "203.0.113.10",
  port: 443,
  listener: "127.0.0.1:1080",
};

function policy(rules: RuleConfig[], fallback: "allow" | "deny" = "allow", listening = []) {
  const config: AccessConfig = { default: fallback, rules };
  return new AccessPolicy(config, listening);
}

/** The verdict for a request to an IP literal, or for a domain resolving to `resolved`. */
function verdict(access: AccessPolicy, change: Partial<AccessRequest>, resolved?: string) {
  const prepared = access.prepare({ ...BASE, ...change });
  const early = access.decide(prepared);
  if (early !== null) return early.allow ? "allow" : early.rule;
  if (resolved === undefined) return "needs the address";
  const late = access.decideAddress(prepared, resolved);
  return late.allow ? "allow" : late.rule;
}

describe("rules", () => {
  test("first match wins, then the default", () => {
    const access = policy(
      [
        { name: "ops may", action: "allow", clients: ["198.51.100.0/24"], ports: [22] },
        { name: "no ssh", action: "deny", ports: [22] },
      ],
      "deny",
    );
    expect(verdict(access, { port: 22 })).toBe("allow");
    expect(verdict(access, { port: 22, client: "192.0.2.1" })).toBe("no ssh");
    expect(verdict(access, { port: 80 })).toBe("access.default");
  });

  test("every criterion of a rule must hold; any entry of a list may", () => {
    const access = policy([
      {
        action: "deny",
        users: ["mallory", "eve"],
        ports: ["8000-8999", 25],
        listeners: ["127.0.0.1:1080"],
      },
    ]);
    expect(verdict(access, { user: "eve", port: 8080 })).toBe("access.rules[0]");
    expect(verdict(access, { user: "eve", port: 25 })).toBe("access.rules[0]");
    expect(verdict(access, { user: "eve", port: 9000 })).toBe("allow");
    expect(verdict(access, { user: "alice", port: 8080 })).toBe("allow");
    expect(verdict(access, { user: undefined, port: 8080 })).toBe("allow");
    expect(verdict(access, { user: "eve", port: 8080, listener: "[::1]:1080" })).toBe("allow");
  });

  test("domains: exact names, *.suffix for names under it (not the apex), any case, a trailing dot", () => {
    const access = policy([{ action: "deny", domains: ["example.com", "*.corp.test"] }]);
    expect(verdict(access, { host: "EXAMPLE.com." }, "203.0.113.1")).toBe("access.rules[0]");
    expect(verdict(access, { host: "a.b.corp.test" }, "203.0.113.1")).toBe("access.rules[0]");
    expect(verdict(access, { host: "corp.test" }, "203.0.113.1")).toBe("allow");
    expect(verdict(access, { host: "notexample.com" }, "203.0.113.1")).toBe("allow");
    expect(verdict(access, { host: "203.0.113.1" })).toBe("allow"); // an IP is no domain
  });

  test("a domain deny decides before resolution: no DNS query for a refused name", () => {
    const access = policy([{ action: "deny", domains: ["*.ads.test"] }]);
    const prepared = access.prepare({ ...BASE, host: "x.ads.test" });
    expect(access.decide(prepared)).toEqual({ allow: false, rule: "access.rules[0]" });
  });

  test("a destination network needs the address: a name is judged by what it resolves to", () => {
    const access = policy([{ name: "internal", action: "deny", destinations: ["10.0.0.0/8"] }]);
    expect(verdict(access, { host: "innocent.test" })).toBe("needs the address");
    expect(verdict(access, { host: "innocent.test" }, "10.1.2.3")).toBe("internal");
    expect(verdict(access, { host: "innocent.test" }, "::ffff:10.1.2.3")).toBe("internal");
    expect(verdict(access, { host: "innocent.test" }, "203.0.113.4")).toBe("allow");
    expect(verdict(access, { host: "10.9.9.9" })).toBe("internal");
  });

  test("a client Bun gave no address matches no client rule", () => {
    const access = policy([{ action: "deny", clients: ["0.0.0.0/0", "::/0"] }]);
    expect(verdict(access, { client: undefined })).toBe("allow");
    expect(verdict(access, {})).toBe("access.rules[0]");
  });
});

describe("built-in denials", () => {
  test("link-local and the metadata services are denied, also when named or written mapped", () => {
    const access = policy([]);
    expect(verdict(access, { host: "169.254.169.254", port: 80 })).toBe("builtin:link-local");
    expect(verdict(access, { host: "::ffff:169.254.169.254", port: 80 })).toBe(
      "builtin:link-local",
    );
    expect(verdict(access, { host: "fe80::1" })).toBe("builtin:link-local");
    expect(verdict(access, { host: "100.100.100.200" })).toBe("builtin:metadata");
    expect(verdict(access, { host: "fd00:ec2::254" })).toBe("builtin:metadata");
    expect(verdict(access, { host: "metadata.google.internal" }, "169.254.169.254")).toBe(
      "builtin:link-local",
    );
  });

  test("the proxy's own listen addresses are denied on their port only", () => {
    const access = new AccessPolicy({ default: "allow", rules: [] }, [
      { host: "127.0.0.1", port: 1080 },
      { host: "0.0.0.0", port: 8080 },
    ]);
    expect(verdict(access, { host: "127.0.0.1", port: 1080 })).toBe("builtin:self");
    expect(verdict(access, { host: "127.0.0.1", port: 1081 })).toBe("allow");
    expect(verdict(access, { host: "127.0.0.5", port: 8080 })).toBe("builtin:self"); // wildcard
    expect(verdict(access, { host: "::1", port: 8080 })).toBe("builtin:self");
    expect(verdict(access, { host: "localhost", port: 1080 }, "127.0.0.1")).toBe("builtin:self");
  });

  test("only an allow rule naming the destination opens them; a broad allow does not", () => {
    const broad = policy([{ action: "allow", clients: ["198.51.100.0/24"] }], "deny");
    expect(verdict(broad, { host: "169.254.169.254" })).toBe("builtin:link-local");
    expect(verdict(broad, { host: "203.0.113.1" })).toBe("allow");
    const named = policy([{ action: "allow", destinations: ["169.254.169.254"] }]);
    expect(verdict(named, { host: "169.254.169.254" })).toBe("allow");
  });

  test("a resolver answer that is no address fails closed", () => {
    const access = policy([]);
    const prepared = access.prepare({ ...BASE, host: "odd.test" });
    expect(access.decideAddress(prepared, "not-an-ip")).toEqual({
      allow: false,
      rule: "builtin:unparsable-address",
    });
  });
});
