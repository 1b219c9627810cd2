// Checks across config fields: each relationship is a config error on one field, saying what would
// fit. Not the single-field ranges (schema.ts, from src/limits.ts) nor relationships between
// constants (asserted at load in src/limits.ts).
//
// Each check runs only when the fields it reads are individually valid (the isValidAt guard), so it
// never piles a second complaint onto a bad field.
// Long because it is a list: one entry per relationship, each with its own wording of the fix.

import * as v from "valibot";
import { LIMITS } from "../limits.ts";
import { type HostPort, parseHostPort } from "../protocol/host-port.ts";
import { parseIPLiteral } from "../protocol/ip.ts";
import { formatPath } from "./errors.ts";
import { getPath, issuePath, isValidAt, type PathKey } from "./fields.ts";
import { newPath, oldPath, RENAMED_OPTIONS } from "./renamed.ts";
import type { RootOutput } from "./schema.ts";

type Keys = readonly [PathKey, ...PathKey[]];
type Context = v.RawCheckContext<RootOutput>;

export interface Relation {
  /** The fields read; the check runs only when every one of them is valid on its own. */
  readonly reads: readonly Keys[];
  /** The field a problem is reported on (and named after the flag that set it, if one did). */
  readonly blame: Keys;
  readonly holds: (root: RootOutput) => boolean;
  /** The "expected …" phrase, which may quote the other values. */
  readonly expected: (root: RootOutput) => string;
}

/** Every relationship between fields, in the order their problems are listed. */
export const RELATIONS: readonly Relation[] = [
  {
    reads: [
      ["pool", "slots"],
      ["pool", "slot_bytes"],
    ],
    blame: ["pool", "slots"],
    holds: ({ pool }) => pool.slots * pool.slot_bytes <= LIMITS.slab_bytes_max,
    expected: ({ pool }) =>
      `at most ${LIMITS.slab_bytes_max} / pool.slot_bytes (${Math.floor(LIMITS.slab_bytes_max / pool.slot_bytes)}, so the slab fits in 4 GiB)`,
  },
  {
    reads: [
      ["relay", "backlog_bytes_max"],
      ["pool", "slots"],
      ["pool", "slot_bytes"],
    ],
    blame: ["relay", "backlog_bytes_max"],
    holds: ({ relay, pool }) =>
      relay.backlog_bytes_max >= pool.slot_bytes &&
      relay.backlog_bytes_max <= pool.slots * pool.slot_bytes,
    expected: ({ pool }) =>
      `between pool.slot_bytes (${pool.slot_bytes}) and pool.slots × pool.slot_bytes (${pool.slots * pool.slot_bytes})`,
  },
  {
    reads: [
      ["pool", "local_batch"],
      ["pool", "slots"],
    ],
    blame: ["pool", "local_batch"],
    holds: ({ pool }) => 2 * pool.local_batch <= pool.slots,
    expected: ({ pool }) =>
      `at most pool.slots / 2 (${pool.slots / 2}; a Worker caches up to 2 × local_batch slots)`,
  },
  {
    reads: [
      ["socks", "auth"],
      ["socks", "users"],
    ],
    blame: ["socks", "users"],
    holds: ({ socks }) => socks.auth !== "password" || socks.users.length > 0,
    expected: () =>
      `at least one user when socks.auth = "password" (add [[socks.users]] or --socks-user USER:PASS)`,
  },
  {
    reads: [["socks", "auth"], ["socks", "users"], ["http"]],
    blame: ["socks", "auth"],
    holds: ({ socks, http }) =>
      socks.auth === "password" ||
      socks.users.length === 0 ||
      http.some((listener) => listener.auth === "password"),
    expected: () =>
      `"password" when socks.users is not empty and no [[http]] listener has auth = "password" (otherwise the users are ignored)`,
  },
  {
    reads: [
      ["socks", "enabled"],
      ["socks", "listen"],
      ["socks", "auth"],
      ["socks", "allow_open_proxy"],
    ],
    blame: ["socks", "listen"],
    holds: ({ socks }) =>
      !socks.enabled ||
      socks.auth !== "none" ||
      socks.allow_open_proxy ||
      isLoopbackHost(parseHostPort(socks.listen)?.host ?? ""),
    expected: () =>
      'a loopback address while socks.auth = "none": anyone who can reach this one could use ' +
      'it as an open proxy; require a password (socks.auth = "password" with [[socks.users]], or ' +
      "--socks-user), listen on 127.0.0.1 or [::1], or set socks.allow_open_proxy = true " +
      "(--allow-open-proxy) if that is what you want",
  },
  {
    reads: [["socks", "enabled"], ["forward"], ["http"]],
    blame: ["forward"],
    holds: ({ socks, forward, http }) => socks.enabled || forward.length > 0 || http.length > 0,
    expected: () =>
      "at least one [[forward]] or [[http]] entry when socks.enabled = false (nothing would listen)",
  },
  {
    reads: [
      ["server", "pool", "max_idle_per_dest"],
      ["server", "pool", "max_total_idle"],
    ],
    blame: ["server", "pool", "max_idle_per_dest"],
    holds: ({ server }) => server.pool.max_idle_per_dest <= server.pool.max_total_idle,
    expected: ({ server }) =>
      `at most server.pool.max_total_idle (${server.pool.max_total_idle}): one destination cannot hold more than the whole pool`,
  },
  {
    reads: [
      ["admin", "listen"],
      ["admin", "token"],
    ],
    blame: ["admin", "listen"],
    holds: ({ admin }) =>
      admin.listen === "off" ||
      admin.token !== undefined ||
      isLoopbackHost(parseHostPort(admin.listen)?.host ?? ""),
    expected: () =>
      "a loopback address unless admin.token is set: the admin API shows every connection and " +
      "client address; set admin.token (16 or more characters; clients send it as " +
      '"Authorization: Bearer TOKEN"), or listen on 127.0.0.1 or [::1]',
  },
  // An old key and its new name together: which one was meant is anyone's guess.
  ...RENAMED_OPTIONS.map(
    (option): Relation => ({
      reads: [oldPath(option), newPath(option)],
      blame: oldPath(option),
      holds: (root) =>
        getPath(root, oldPath(option)) === undefined ||
        getPath(root, newPath(option)) === undefined,
      expected: () =>
        `nothing here when ${formatPath(newPath(option))} is set (this is its deprecated old name: delete it)`,
    }),
  ),
];

function checkRelation(relation: Relation, { dataset, addIssue }: Context): void {
  if (!relation.reads.every((keys) => isValidAt(dataset.issues, keys))) return;
  const root = dataset.value as RootOutput; // the fields read are valid (checked above)
  if (relation.holds(root)) return;
  addIssue({
    message: relation.expected(root),
    input: getPath(root, relation.blame),
    path: issuePath(root, relation.blame),
  });
}

/** 127.0.0.0/8, ::1 and "localhost": reachable from this machine only. */
function isLoopbackHost(host: string): boolean {
  if (host.toLowerCase() === "localhost") return true;
  const literal = parseIPLiteral(host);
  if (literal === null) return false;
  if (literal.family === 4) return literal.bytes[0] === 127;
  return literal.bytes.every((byte, index) => byte === (index === 15 ? 1 : 0));
}

/** An unspecified address ("0.0.0.0", "::") binds every address, so it overlaps them all. */
function isWildcard(host: string): boolean {
  return parseIPLiteral(host)?.bytes.every((byte) => byte === 0) ?? false;
}

function sameListenAddress(left: HostPort, right: HostPort): boolean {
  if (left.port === 0 || left.port !== right.port) return false; // port 0: each bind gets its own
  const leftHost = left.host.toLowerCase();
  const rightHost = right.host.toLowerCase();
  return leftHost === rightHost || isWildcard(leftHost) || isWildcard(rightHost);
}

// With reusePort, a second bind of the same address succeeds silently and the kernel then splits
// connections between the two listeners, so duplicates are caught here instead. Names are compared
// as written ("localhost" and "127.0.0.1" are not resolved).
function distinctListenAddresses({ dataset, addIssue }: Context): void {
  const root: unknown = dataset.value;
  const seen: { keys: Keys; address: HostPort }[] = [];
  const candidates: Keys[] = [];
  if (getPath(root, ["socks", "enabled"]) === true) candidates.push(["socks", "listen"]);
  for (const section of ["forward", "http"]) {
    const entries = getPath(root, [section]);
    if (!Array.isArray(entries)) continue;
    for (let index = 0; index < entries.length; index++)
      candidates.push([section, index, "listen"]);
  }
  // parseHostPort("off") is null, so a switched-off admin API is skipped below.
  candidates.push(["admin", "listen"]);
  for (const keys of candidates) {
    const text = getPath(root, keys);
    const address = typeof text === "string" ? parseHostPort(text) : null;
    if (address === null || !isValidAt(dataset.issues, keys)) continue;
    const clash = seen.find((earlier) => sameListenAddress(earlier.address, address));
    if (clash === undefined) {
      seen.push({ keys, address });
      continue;
    }
    addIssue({
      message: `an address not already used by ${formatPath(clash.keys)}`,
      input: text,
      path: issuePath(root, keys),
    });
  }
}

/** Each [[http]] listener: its auth (socks.auth unless given) needs users when "password", and
 *  without one it may listen beyond loopback only with socks.allow_open_proxy, as SOCKS5 may. */
function httpListeners({ dataset, addIssue }: Context): void {
  const root = dataset.value as RootOutput;
  if (!Array.isArray(root.http)) return;
  const socksKeys = ["auth", "users", "allow_open_proxy"];
  if (!socksKeys.every((key) => isValidAt(dataset.issues, ["socks", key]))) return;
  root.http.forEach((entry, index) => {
    const keys: Keys = ["http", index];
    if (!isValidAt(dataset.issues, keys)) return;
    const auth = entry.auth ?? root.socks.auth;
    if (auth === "password" && root.socks.users.length === 0) {
      addIssue({
        message:
          'users when auth = "password": HTTP listeners check the SOCKS users (add [[socks.users]] or --socks-user USER:PASS)',
        input: entry.auth ?? auth,
        path: issuePath(root, ["http", index, "auth"]),
      });
    }
    const host = parseHostPort(entry.listen)?.host ?? "";
    if (auth === "none" && !root.socks.allow_open_proxy && !isLoopbackHost(host)) {
      addIssue({
        message:
          'a loopback address while this listener has no auth: anyone who can reach it could use it as an open proxy; set auth = "password" (with [[socks.users]]), listen on 127.0.0.1 or [::1], or set socks.allow_open_proxy = true (--allow-open-proxy) if that is what you want',
        input: entry.listen,
        path: issuePath(root, ["http", index, "listen"]),
      });
    }
  });
}

/** A listener that expects PROXY headers needs someone to trust them from: with no
 *  server.trusted_proxies every connection to it would be closed. */
function proxyProtocolTrust({ dataset, addIssue }: Context): void {
  const root = dataset.value as RootOutput;
  if (!isValidAt(dataset.issues, ["server", "trusted_proxies"])) return;
  if (root.server.trusted_proxies.length > 0) return;
  const expecting: Keys[] = [];
  if (root.socks.enabled && root.socks.proxy_protocol) expecting.push(["socks", "proxy_protocol"]);
  for (const list of ["forward", "http"] as const) {
    if (!Array.isArray(root[list])) continue;
    root[list].forEach((entry, index) => {
      if (entry.proxy_protocol) expecting.push([list, index, "proxy_protocol"]);
    });
  }
  for (const keys of expecting) {
    if (!isValidAt(dataset.issues, keys)) continue;
    addIssue({
      message:
        "false unless server.trusted_proxies lists the load balancers' addresses (--trusted-proxy CIDR): with none, every connection to this listener would be refused",
      input: true,
      path: issuePath(root, keys),
    });
  }
}

/** Each user has exactly one of password and password_hash. */
function oneSecretPerUser({ dataset, addIssue }: Context): void {
  const root: unknown = dataset.value;
  const users = getPath(root, ["socks", "users"]);
  if (!Array.isArray(users)) return;
  users.forEach((user, index) => {
    const keys: Keys = ["socks", "users", index];
    if (!isValidAt(dataset.issues, keys) || typeof user !== "object" || user === null) return;
    const given = ["password", "password_hash"].filter((key) => key in user);
    if (given.length === 1) return;
    addIssue({
      message: `exactly one of password and password_hash (it has ${given.length === 0 ? "neither" : "both"})`,
      input: user,
      path: issuePath(root, keys),
    });
  });
}

function distinctUsernames({ dataset, addIssue }: Context): void {
  const root: unknown = dataset.value;
  const users = getPath(root, ["socks", "users"]);
  if (!Array.isArray(users)) return;
  const firstIndexByName = new Map<string, number>();
  users.forEach((_, index) => {
    const keys: Keys = ["socks", "users", index, "username"];
    const username = getPath(root, keys);
    if (typeof username !== "string" || !isValidAt(dataset.issues, keys)) return;
    const first = firstIndexByName.get(username);
    if (first === undefined) firstIndexByName.set(username, index);
    else {
      addIssue({
        message: `a username not already used by socks.users[${first}]`,
        input: username,
        path: issuePath(root, keys),
      });
    }
  });
}

/** Every check across fields, as one step of the schema's pipe. */
export const crossFieldChecks = v.rawCheck<RootOutput>((context) => {
  for (const relation of RELATIONS) checkRelation(relation, context);
  distinctListenAddresses(context);
  httpListeners(context);
  proxyProtocolTrust(context);
  distinctUsernames(context);
  oneSecretPerUser(context);
});
