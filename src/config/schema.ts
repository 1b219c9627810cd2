// The configuration schema: every option, its default and its accepted range (derived from
// src/limits.ts), section by section as the TOML file is written. Not the building blocks
// (fields.ts), the checks across fields (relations.ts), the command line (flags.ts, load.ts) or
// the wording of errors (errors.ts).
// Long because it is a table: one entry per option, in the order of the TOML file.

import * as v from "valibot";
import { LIMITS } from "../limits.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log.ts";
import { LOCAL_BATCH_DEFAULT, STRATEGY_NAMES } from "../pool/index.ts";
import { ConfigError, formatIssue } from "./errors.ts";
import {
  address,
  credential,
  domainPattern,
  flag,
  integer,
  integerBetween,
  network,
  oneOf,
  passwordHash,
  portEntry,
  table,
  timeoutMs,
} from "./fields.ts";
import { crossFieldChecks } from "./relations.ts";
import { parseIPLiteral } from "../protocol/ip.ts";

export const SOCKS_AUTH_METHODS = ["none", "password"] as const;
/** What the SOCKS listener speaks: SOCKS5 only, or SOCKS5 and HTTP CONNECT told apart by the first
 *  byte (src/protocol/auto-front.ts). */
export const SOCKS_PROTOCOLS = ["socks5", "auto"] as const;

// ── Sections ───────────────────────────────────────────────────────────────────────────────────

/**
 * [server.pool]: the upstream warm-connection pool (src/upstream/), RustSocks' table verbatim so its
 * section pastes in. Not the buffer pool: that is [pool].
 */
const upstreamPoolEntries = {
  enabled: v.optional(flag, false),
  max_idle_per_dest: v.optional(integerBetween(1, LIMITS.upstream_idle_max), 4),
  max_total_idle: v.optional(integerBetween(1, LIMITS.upstream_idle_max), 100),
  idle_timeout_secs: v.optional(integerBetween(1, LIMITS.upstream_idle_timeout_secs_max), 90),
  /** Connects the pool makes itself (warming, refilling); a client's own dial uses [upstream]. */
  connect_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.connect), 5_000),
};

const serverEntries = {
  /** 0 = one Worker per CPU (navigator.hardwareConcurrency); see workerCount(). */
  workers: v.optional(
    integerBetween(
      0,
      LIMITS.workers_max,
      `0 (one per CPU) or an integer between 1 and ${LIMITS.workers_max}`,
    ),
    0,
  ),
  /** Start even when another process already serves a listen address (both get connections). */
  share_port: v.optional(flag, false),
  /** Open client connections for the whole process, summed over all Workers, not per Worker. */
  connections_max: v.optional(
    integerBetween(LIMITS.connections_min, LIMITS.connections_max),
    10_000,
  ),
  /** How long shutdown waits for connections to drain before closing them; 0 closes at once. */
  shutdown_timeout_ms: v.optional(
    timeoutMs(LIMITS.timeouts.shutdown, "closes them at once"),
    10_000,
  ),
  /** On SIGTERM/SIGINT, how long the listeners keep accepting while /readyz already answers 503,
   *  before they close and the drain begins: time for a load balancer's health check to take the
   *  instance out of rotation first. */
  drain_delay_ms: v.optional(
    timeoutMs(LIMITS.timeouts.drain_delay, "closes the listeners at once"),
    0,
  ),
  /** Who may send a PROXY protocol header to a listener with proxy_protocol = true: the load
   *  balancers' addresses or networks. A connection from anywhere else is closed unread. */
  trusted_proxies: v.optional(
    v.array(network, "an array of load balancer addresses or networks"),
    () => [],
  ),
  pool: v.optional(table(upstreamPoolEntries), {}),
};

/** A user: exactly one of a plain password (compared in constant time) or a hash from
 *  `sockpool --hash-password` (argon2id, or bcrypt), checked off the event loop. */
const userEntries = {
  username: credential,
  password: v.optional(credential),
  password_hash: v.optional(passwordHash),
};

const socksEntries = {
  enabled: v.optional(flag, true),
  listen: v.optional(address(0, "listen on", "[::1]:1080"), "127.0.0.1:1080"),
  auth: v.optional(oneOf(SOCKS_AUTH_METHODS), "none"),
  /** "auto": the same port also serves HTTP CONNECT (the first byte decides). */
  protocol: v.optional(oneOf(SOCKS_PROTOCOLS), "socks5"),
  /** Let a SOCKS5 listener without auth listen beyond loopback: anyone who reaches it can use it. */
  allow_open_proxy: v.optional(flag, false),
  users: v.optional(
    v.array(table(userEntries), "an array of { username, password } tables"),
    () => [],
  ),
  /** More users, one `username:hash` per line (see load.ts); read at start and on reload. */
  users_file: v.optional(v.pipe(v.string("a file path"), v.minLength(1, "a file path"))),
  /** Every connection starts with a PROXY protocol header (v1 or v2) from a trusted proxy. */
  proxy_protocol: v.optional(flag, false),
  handshake_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.handshake), 10_000),
};

/**
 * Every upstream dial, SOCKS5 CONNECT and [[forward]] alike. No defaults here: the final transform
 * fills them (UPSTREAM_DEFAULTS), after the deprecated socks.* keys of the same name had their say.
 */
const upstreamEntries = {
  /** Per upstream connect, over all addresses of a name. */
  connect_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.connect)),
  dns_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.dns)),
};

export const UPSTREAM_DEFAULTS = { connect_timeout_ms: 10_000, dns_timeout_ms: 5_000 } as const;

/** The [socks] table as accepted: its own keys plus the deprecated ones (see renamed.ts). */
const socksInputEntries = {
  ...socksEntries,
  connect_timeout_ms: upstreamEntries.connect_timeout_ms,
  dns_timeout_ms: upstreamEntries.dns_timeout_ms,
};

const forwardEntries = {
  listen: address(0, "listen on", "[::1]:8080"),
  target: address(1, "connect to", "[::1]:80"),
  /** Every connection starts with a PROXY protocol header from a trusted proxy (absent: false). */
  proxy_protocol: v.optional(flag),
};

/** An HTTP CONNECT listener. `auth` defaults to socks.auth (the same users serve both). */
const httpEntries = {
  listen: address(0, "listen on", "[::1]:3128"),
  auth: v.optional(oneOf(SOCKS_AUTH_METHODS)),
  /** Every connection starts with a PROXY protocol header from a trusted proxy (absent: false). */
  proxy_protocol: v.optional(flag),
};

/** SOCKS5 UDP ASSOCIATE (src/proxy/udp-association.ts); answered 07 while off. */
const udpEntries = {
  enabled: v.optional(flag, false),
  /** The address the reply announces for the relay (NAT, containers); the relay's own when absent. */
  announce_address: v.optional(
    v.pipe(
      v.string("an IP address"),
      v.check((text: string) => parseIPLiteral(text) !== null, "an IP address"),
    ),
  ),
  idle_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.udp_idle), 60_000),
  destinations_max: v.optional(integerBetween(1, LIMITS.udp_destinations_max), 64),
  datagrams_per_second: v.optional(
    integerBetween(
      0,
      LIMITS.udp_datagrams_per_second_max,
      `0 (no limit) or an integer up to ${LIMITS.udp_datagrams_per_second_max}`,
    ),
    0,
  ),
  associations_max: v.optional(integerBetween(1, LIMITS.udp_associations_max), 1_000),
};

const relayEntries = {
  idle_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.idle, "disables"), 300_000),
  /** After one side's FIN, close both if the other side has not finished within this time. */
  fin_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.fin), 30_000),
  /** Bytes held in pool slots per connection per direction while the peer is slow. */
  backlog_bytes_max: v.optional(
    integerBetween(LIMITS.backlog_bytes_min, LIMITS.backlog_bytes_max),
    262_144,
  ),
};

const poolEntries = {
  strategy: v.optional(oneOf(STRATEGY_NAMES), "local"),
  slots: v.optional(
    integer(
      `a power of two between ${LIMITS.pool_slots_min} and ${LIMITS.pool_slots_max}`,
      (slots) =>
        slots >= LIMITS.pool_slots_min &&
        slots <= LIMITS.pool_slots_max &&
        (slots & (slots - 1)) === 0,
    ),
    4096,
  ),
  slot_bytes: v.optional(
    integer(
      `a multiple of ${LIMITS.slot_bytes_align} between ${LIMITS.slot_bytes_min} and ${LIMITS.slot_bytes_max}`,
      (bytes) =>
        bytes >= LIMITS.slot_bytes_min &&
        bytes <= LIMITS.slot_bytes_max &&
        bytes % LIMITS.slot_bytes_align === 0,
    ),
    16_384,
  ),
  /** Track an owner flag per slot and fail on a double or foreign release (debugging aid). */
  checked: v.optional(flag, false),
  /** Percent of the slots that clients still in their handshake may hold together (a message
   *  split across reads waits in a slot), so unauthenticated clients cannot starve the relays. */
  handshake_share_percent: v.optional(
    integerBetween(LIMITS.handshake_share_percent_min, LIMITS.handshake_share_percent_max),
    25,
  ),
  /** B for the "local" strategy: each Worker caches up to 2·B slots, moved B at a time. */
  local_batch: v.optional(
    integerBetween(LIMITS.local_batch_min, LIMITS.local_batch_max),
    LOCAL_BATCH_DEFAULT,
  ),
};

/** Per client IP, all Workers together (src/proxy/clients.ts); 0 switches a limit off. */
const clientsEntries = {
  connections_max: v.optional(
    integerBetween(
      0,
      LIMITS.connections_max,
      `0 (no limit) or an integer up to ${LIMITS.connections_max}`,
    ),
    0,
  ),
  new_per_second: v.optional(
    integerBetween(
      0,
      LIMITS.client_new_per_second_max,
      `0 (no limit) or an integer up to ${LIMITS.client_new_per_second_max}`,
    ),
    0,
  ),
  auth_failures_max: v.optional(
    integerBetween(
      0,
      LIMITS.auth_failures_max,
      `0 (never block) or an integer up to ${LIMITS.auth_failures_max}`,
    ),
    10,
  ),
  auth_block_ms: v.optional(timeoutMs(LIMITS.timeouts.auth_block), 60_000),
};

export const ACCESS_ACTIONS = ["allow", "deny"] as const;

/** One access rule: every criterion given must hold (a list holds when any entry matches). */
const ruleEntries = {
  name: v.optional(v.pipe(v.string("a name"), v.minLength(1, "a non-empty name"))),
  action: oneOf(ACCESS_ACTIONS),
  clients: v.optional(v.array(network, "an array of client addresses or networks")),
  users: v.optional(v.array(credential, "an array of usernames")),
  destinations: v.optional(v.array(network, "an array of destination addresses or networks")),
  domains: v.optional(v.array(domainPattern, "an array of domains")),
  ports: v.optional(v.array(portEntry, "an array of ports or port ranges")),
  listeners: v.optional(
    v.array(address(0, "match a listener", "[::1]:1080"), "an array of listen addresses"),
  ),
};

const accessEntries = {
  /** What happens to a request no rule matched (after the built-in denials). */
  default: v.optional(oneOf(ACCESS_ACTIONS), "allow"),
  rules: v.optional(v.array(table(ruleEntries), "an array of [[access.rules]] tables"), () => []),
};

/** "off", or a HOST:PORT for the admin API (src/admin/). */
const adminListen = v.union(
  [v.literal("off"), address(0, "serve the admin API on", "[::1]:9090")],
  'HOST:PORT to serve the admin API on (IPv6 as "[::1]:9090"), or "off"',
);

const { admin_token_bytes_min: tokenMin, admin_token_bytes_max: tokenMax } = LIMITS;
const adminEntries = {
  listen: v.optional(adminListen, "127.0.0.1:9090"),
  /** Bearer token every endpoint requires; required when listen is not a loopback address. */
  token: v.optional(
    v.pipe(
      v.string(`a string of ${tokenMin}..${tokenMax} bytes`),
      v.check(
        (text: string) =>
          text.length >= tokenMin && text.length <= tokenMax && /^[\x21-\x7e]+$/.test(text),
        `${tokenMin}..${tokenMax} printable ASCII characters, no spaces`,
      ),
    ),
  ),
};

const logEntries = {
  level: v.optional(oneOf(LOG_LEVELS), "info"),
  format: v.optional(oneOf(LOG_FORMATS), "text"),
};

const rootEntries = {
  server: v.optional(table(serverEntries), {}),
  socks: v.optional(table(socksInputEntries), {}),
  upstream: v.optional(table(upstreamEntries), {}),
  forward: v.optional(v.array(table(forwardEntries), "an array of [[forward]] tables"), () => []),
  http: v.optional(v.array(table(httpEntries), "an array of [[http]] tables"), () => []),
  udp: v.optional(table(udpEntries), {}),
  relay: v.optional(table(relayEntries), {}),
  pool: v.optional(table(poolEntries), {}),
  clients: v.optional(table(clientsEntries), {}),
  access: v.optional(table(accessEntries), {}),
  admin: v.optional(table(adminEntries), {}),
  log: v.optional(table(logEntries), {}),
};

const rootTable = table(rootEntries);
/** The validated table before the deprecated keys are moved to their new place. */
export type RootOutput = v.InferOutput<typeof rootTable>;

/** Section names and their current keys, for --help. `array` sections are written [[name]]. */
export const CONFIG_SECTIONS: readonly {
  name: string;
  array: boolean;
  keys: readonly string[];
  /** For an array section: the keys every entry must have (default: all of them). */
  required?: readonly string[];
}[] = [
  {
    name: "server",
    array: false,
    keys: Object.keys(serverEntries).filter((key) => key !== "pool"),
  },
  { name: "server.pool", array: false, keys: Object.keys(upstreamPoolEntries) },
  { name: "socks", array: false, keys: Object.keys(socksEntries) },
  {
    name: "socks.users",
    array: true,
    keys: Object.keys(userEntries),
    required: ["username", "password or password_hash"],
  },
  { name: "upstream", array: false, keys: Object.keys(upstreamEntries) },
  {
    name: "forward",
    array: true,
    keys: Object.keys(forwardEntries),
    required: ["listen", "target"],
  },
  { name: "http", array: true, keys: Object.keys(httpEntries), required: ["listen"] },
  { name: "udp", array: false, keys: Object.keys(udpEntries) },
  { name: "relay", array: false, keys: Object.keys(relayEntries) },
  { name: "pool", array: false, keys: Object.keys(poolEntries) },
  { name: "clients", array: false, keys: Object.keys(clientsEntries) },
  { name: "access", array: false, keys: ["default"] },
  { name: "access.rules", array: true, keys: Object.keys(ruleEntries), required: ["action"] },
  { name: "admin", array: false, keys: Object.keys(adminEntries) },
  { name: "log", array: false, keys: Object.keys(logEntries) },
];

/** Moves the deprecated socks.* timeouts to [upstream], fills [upstream]'s defaults and each
 *  [[http]] listener's auth (socks.auth unless it says otherwise). */
function moveRenamedOptions({ socks, upstream, http, ...rest }: RootOutput) {
  const { connect_timeout_ms: oldConnect, dns_timeout_ms: oldDns, ...socksOwn } = socks;
  return {
    ...rest,
    socks: socksOwn,
    http: http.map((entry) => ({
      listen: entry.listen,
      auth: entry.auth ?? socks.auth,
      ...(entry.proxy_protocol === undefined ? {} : { proxy_protocol: entry.proxy_protocol }),
    })),
    upstream: {
      connect_timeout_ms:
        upstream.connect_timeout_ms ?? oldConnect ?? UPSTREAM_DEFAULTS.connect_timeout_ms,
      dns_timeout_ms: upstream.dns_timeout_ms ?? oldDns ?? UPSTREAM_DEFAULTS.dns_timeout_ms,
    },
  };
}

export const ConfigSchema = v.pipe(rootTable, crossFieldChecks, v.transform(moveRenamedOptions));

export type Config = v.InferOutput<typeof ConfigSchema>;

/** Validates without throwing; `issues` go to formatIssue() in errors.ts. */
export function validateConfig(input: unknown) {
  return v.safeParse(ConfigSchema, input);
}

/** Validates, or throws a ConfigError listing every problem. */
export function parseConfig(input: unknown): Config {
  const result = validateConfig(input);
  if (result.success) return result.output;
  throw new ConfigError(result.issues.map((issue) => formatIssue(issue)));
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** Every option at its default: the schema applied to an empty file. Frozen. */
export const DEFAULT_CONFIG: Readonly<Config> = deepFreeze(parseConfig({}));

/** server.workers resolved: 0 means one Worker per CPU, capped at LIMITS.workers_max. */
/** Slots one Worker's handshakes may hold: its even part of pool.handshake_share_percent. */
export function handshakeSlotsPerWorker(config: Config): number {
  const share = Math.floor((config.pool.slots * config.pool.handshake_share_percent) / 100);
  return Math.max(1, Math.floor(share / workerCount(config.server)));
}

export function workerCount(
  server: Config["server"],
  cpus = navigator.hardwareConcurrency,
): number {
  if (server.workers > 0) return server.workers;
  return Math.min(Math.max(1, cpus), LIMITS.workers_max);
}
