// The configuration schema: every option, its default and its limits, in one place.
// Not the command line (cli.ts) and not the wording of errors (errors.ts). The TOML file mirrors
// this shape section by section; flags are layered on top of it before it is validated.

import * as v from "valibot";
import { LIMITS, type TimeoutRange } from "../limits.ts";
import { type HostPort, parseHostPort } from "../protocol/host-port.ts";
import { LOCAL_BATCH_DEFAULT, STRATEGY_NAMES } from "../pool/index.ts";
import { ConfigError, formatIssue, formatPath } from "./errors.ts";

export const SOCKS_AUTH_METHODS = ["none", "password"] as const;
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export const LOG_FORMATS = ["text", "json"] as const;

// ── Building blocks ────────────────────────────────────────────────────────────────────────────
// Each field yields at most ONE issue, whose message is the "expected …" phrase; errors.ts adds
// the path and the value that was found.

function integer(expected: string, isAllowed: (value: number) => boolean) {
  return v.pipe(
    v.number(expected),
    v.check((value: number) => Number.isInteger(value) && isAllowed(value), expected),
  );
}

function integerBetween(
  min: number,
  max: number,
  expected = `an integer between ${min} and ${max}`,
) {
  return integer(expected, (value) => value >= min && value <= max);
}

function timeoutMs({ min_ms: min, max_ms: max }: TimeoutRange, zeroMeans = "") {
  const note = min === 0 ? ` (0 ${zeroMeans})` : "";
  return integerBetween(min, max, `milliseconds between ${min} and ${max}${note}`);
}

function oneOf<const T extends readonly [string, ...string[]]>(options: T) {
  return v.picklist(
    options,
    `one of ${options.map((option) => JSON.stringify(option)).join(", ")}`,
  );
}

const flag = v.boolean("true or false");

function address(portMin: 0 | 1, purpose: string, example: string) {
  const expected = `HOST:PORT to ${purpose}, port ${portMin}..${LIMITS.port_max} (IPv6 as "${example}")`;
  return v.pipe(
    v.string(expected),
    v.check((text: string) => (parseHostPort(text)?.port ?? -1) >= portMin, expected),
  );
}

const textEncoder = new TextEncoder();

const { credential_bytes_min: credentialMin, credential_bytes_max: credentialMax } = LIMITS;
const credential = v.pipe(
  v.string(`a string of ${credentialMin}..${credentialMax} bytes`),
  v.check((text: string) => {
    const bytes = textEncoder.encode(text).length;
    return bytes >= credentialMin && bytes <= credentialMax;
  }, `${credentialMin}..${credentialMax} bytes`),
);

function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null; // not an array, date or class
}

/**
 * A TOML table with a fixed set of keys. Like v.strictObject, but it reports EVERY unknown key
 * (v.strictObject stops at the first one, so two typos would take two runs to find). The final
 * transform only narrows the type: input with an unknown key never gets that far.
 */
function table<const TEntries extends v.ObjectEntries>(entries: TEntries) {
  const known = Object.keys(entries);
  return v.pipe(
    v.custom<Record<string, unknown>>(isTable, "a table"),
    v.looseObject(entries),
    v.rawCheck(({ dataset, addIssue }) => {
      const fields = dataset.value as Record<string, unknown>;
      for (const key of Object.keys(fields)) {
        if (Object.hasOwn(entries, key)) continue;
        addIssue({
          message: unknownKeyHint(key, known),
          input: key,
          path: [{ type: "object", origin: "key", input: fields, key, value: fields[key] }],
        });
      }
    }),
    v.transform((input) => input as v.InferOutput<v.ObjectSchema<TEntries, undefined>>),
  );
}

function unknownKeyHint(key: string, known: readonly string[]): string {
  // A typo, or the unit left off ("idle_timeout" for "idle_timeout_ms").
  const close = known.filter(
    (candidate) => editDistance(key, candidate) <= 2 || candidate.startsWith(`${key}_`),
  );
  if (close.length === 1) return `did you mean "${close[0]}"?`;
  return `known options: ${known.join(", ")}`;
}

function editDistance(from: string, to: string): number {
  let previous = Array.from({ length: to.length + 1 }, (_, index) => index);
  for (let i = 1; i <= from.length; i++) {
    const current = [i];
    for (let j = 1; j <= to.length; j++) {
      const substitution = previous[j - 1]! + (from[i - 1] === to[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[to.length]!;
}

// ── Sections ───────────────────────────────────────────────────────────────────────────────────

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
};

const userEntries = { username: credential, password: credential };

const socksEntries = {
  enabled: v.optional(flag, true),
  listen: v.optional(address(0, "listen on", "[::1]:1080"), "127.0.0.1:1080"),
  auth: v.optional(oneOf(SOCKS_AUTH_METHODS), "none"),
  users: v.optional(
    v.array(table(userEntries), "an array of { username, password } tables"),
    () => [],
  ),
  handshake_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.handshake), 10_000),
  connect_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.connect), 10_000),
  dns_timeout_ms: v.optional(timeoutMs(LIMITS.timeouts.dns), 5_000),
};

const forwardEntries = {
  listen: address(0, "listen on", "[::1]:8080"),
  target: address(1, "connect to", "[::1]:80"),
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
  /** B for the "local" strategy: each Worker caches up to 2·B slots, moved B at a time. */
  local_batch: v.optional(
    integerBetween(LIMITS.local_batch_min, LIMITS.local_batch_max),
    LOCAL_BATCH_DEFAULT,
  ),
};

const logEntries = {
  level: v.optional(oneOf(LOG_LEVELS), "info"),
  format: v.optional(oneOf(LOG_FORMATS), "text"),
};

const rootEntries = {
  server: v.optional(table(serverEntries), {}),
  socks: v.optional(table(socksEntries), {}),
  forward: v.optional(v.array(table(forwardEntries), "an array of [[forward]] tables"), () => []),
  relay: v.optional(table(relayEntries), {}),
  pool: v.optional(table(poolEntries), {}),
  log: v.optional(table(logEntries), {}),
};

const rootTable = table(rootEntries);
type RootOutput = v.InferOutput<typeof rootTable>;

/** Section names and their keys, for --help. `array` sections are written [[name]] in TOML. */
export const CONFIG_SECTIONS: readonly { name: string; array: boolean; keys: readonly string[] }[] =
  [
    { name: "server", array: false, keys: Object.keys(serverEntries) },
    { name: "socks", array: false, keys: Object.keys(socksEntries) },
    { name: "socks.users", array: true, keys: Object.keys(userEntries) },
    { name: "forward", array: true, keys: Object.keys(forwardEntries) },
    { name: "relay", array: false, keys: Object.keys(relayEntries) },
    { name: "pool", array: false, keys: Object.keys(poolEntries) },
    { name: "log", array: false, keys: Object.keys(logEntries) },
  ];

// ── Relationships between fields ───────────────────────────────────────────────────────────────
// Each one runs only when the fields it reads are individually valid (partialCheck, or the
// isValidAt guard in the raw checks), so it never piles a second complaint onto a bad field.

type IssuePath = [v.IssuePathItem, ...v.IssuePathItem[]];
type PathKey = string | number;

function isValidAt(issues: readonly v.BaseIssue<unknown>[] | undefined, keys: readonly PathKey[]) {
  for (const issue of issues ?? []) {
    const issueKeys = issue.path?.map((item) => item.key) ?? [];
    const shared = Math.min(keys.length, issueKeys.length);
    if (keys.slice(0, shared).every((key, index) => key === issueKeys[index])) return false;
  }
  return true;
}

function issuePath(root: unknown, keys: readonly [PathKey, ...PathKey[]]): IssuePath {
  const items: v.IssuePathItem[] = [];
  let input = root;
  for (const key of keys) {
    const value = (input as Record<PathKey, unknown>)[key];
    items.push({ type: "unknown", origin: "value", input, key, value });
    input = value;
  }
  return items as IssuePath;
}

function get(root: unknown, keys: readonly PathKey[]): unknown {
  let value = root;
  for (const key of keys) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PathKey, unknown>)[key];
  }
  return value;
}

// Wildcard binds overlap every address on the same port.
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::", "0:0:0:0:0:0:0:0"]);

function sameListenAddress(left: HostPort, right: HostPort): boolean {
  if (left.port === 0 || left.port !== right.port) return false; // port 0: each bind gets its own
  const leftHost = left.host.toLowerCase();
  const rightHost = right.host.toLowerCase();
  return leftHost === rightHost || WILDCARD_HOSTS.has(leftHost) || WILDCARD_HOSTS.has(rightHost);
}

// With reusePort, a second bind of the same address succeeds silently and the kernel then splits
// connections between the two listeners, so duplicates are caught here instead. Names are compared
// as written ("localhost" and "127.0.0.1" are not resolved).
const distinctListenAddresses = v.rawCheck<RootOutput>(({ dataset, addIssue }) => {
  const root: unknown = dataset.value;
  const seen: { keys: [PathKey, ...PathKey[]]; address: HostPort }[] = [];
  const candidates: [PathKey, ...PathKey[]][] = [];
  if (get(root, ["socks", "enabled"]) === true) candidates.push(["socks", "listen"]);
  const forwards = get(root, ["forward"]);
  if (Array.isArray(forwards)) {
    for (let index = 0; index < forwards.length; index++)
      candidates.push(["forward", index, "listen"]);
  }
  for (const keys of candidates) {
    const text = get(root, keys);
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
});

const distinctUsernames = v.rawCheck<RootOutput>(({ dataset, addIssue }) => {
  const root: unknown = dataset.value;
  const users = get(root, ["socks", "users"]);
  if (!Array.isArray(users)) return;
  const firstIndexByName = new Map<string, number>();
  users.forEach((_, index) => {
    const keys: [PathKey, ...PathKey[]] = ["socks", "users", index, "username"];
    const username = get(root, keys);
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
});

// ── The schema ─────────────────────────────────────────────────────────────────────────────────

export const ConfigSchema = v.pipe(
  rootTable,
  v.forward(
    v.partialCheck(
      [
        ["pool", "slots"],
        ["pool", "slot_bytes"],
      ],
      ({ pool }) => pool.slots * pool.slot_bytes <= LIMITS.slab_bytes_max,
      ({ input: { pool } }) =>
        `at most ${LIMITS.slab_bytes_max} / pool.slot_bytes (${Math.floor(LIMITS.slab_bytes_max / pool.slot_bytes)}, so the slab fits in 4 GiB)`,
    ),
    ["pool", "slots"],
  ),
  v.forward(
    v.partialCheck(
      [
        ["relay", "backlog_bytes_max"],
        ["pool", "slots"],
        ["pool", "slot_bytes"],
      ],
      ({ relay, pool }) =>
        relay.backlog_bytes_max >= pool.slot_bytes &&
        relay.backlog_bytes_max <= pool.slots * pool.slot_bytes,
      ({ input: { pool } }) =>
        `between pool.slot_bytes (${pool.slot_bytes}) and pool.slots × pool.slot_bytes (${pool.slots * pool.slot_bytes})`,
    ),
    ["relay", "backlog_bytes_max"],
  ),
  v.forward(
    v.partialCheck(
      [
        ["pool", "local_batch"],
        ["pool", "slots"],
      ],
      ({ pool }) => 2 * pool.local_batch <= pool.slots,
      ({ input: { pool } }) =>
        `at most pool.slots / 2 (${pool.slots / 2}; a Worker caches up to 2 × local_batch slots)`,
    ),
    ["pool", "local_batch"],
  ),
  v.forward(
    v.partialCheck(
      [
        ["socks", "auth"],
        ["socks", "users"],
      ],
      ({ socks }) => socks.auth !== "password" || socks.users.length > 0,
      `at least one user when socks.auth = "password" (add [[socks.users]] or --socks-user USER:PASS)`,
    ),
    ["socks", "users"],
  ),
  v.forward(
    v.partialCheck(
      [
        ["socks", "auth"],
        ["socks", "users"],
      ],
      ({ socks }) => socks.auth === "password" || socks.users.length === 0,
      `"password" when socks.users is not empty (otherwise the users are ignored)`,
    ),
    ["socks", "auth"],
  ),
  v.forward(
    v.partialCheck(
      [["socks", "enabled"], ["forward"]],
      ({ socks, forward }) => socks.enabled || forward.length > 0,
      "at least one [[forward]] entry when socks.enabled = false (nothing would listen)",
    ),
    ["forward"],
  ),
  distinctListenAddresses,
  distinctUsernames,
);

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
export function workerCount(
  server: Config["server"],
  cpus = navigator.hardwareConcurrency,
): number {
  if (server.workers > 0) return server.workers;
  return Math.min(Math.max(1, cpus), LIMITS.workers_max);
}
