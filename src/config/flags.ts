// The flag table: every command-line option, what it sets in the config, and how. It drives
// argv parsing (load.ts), the mapping of each flag to config paths with its provenance, and --help
// (help.ts). Not the reading of argv or files (load.ts) and not validation (schema.ts).
//
// Flags that take a list (--forward, --http, --socks-user) APPEND to the file's entries; every other
// flag replaces the file's value.
// Long because it is a table: one entry per flag, then the few helpers that apply them.

import { LIMITS } from "../limits.ts";
import { LOG_FORMATS, LOG_LEVELS } from "../log.ts";
import { STRATEGY_NAMES } from "../pool/strategies/names.ts";
import { formatPath, REDACTED } from "./errors.ts";
import { isTable } from "./fields.ts";

/** The environment variable naming the config file when --config is not given. */
export const CONFIG_ENV_VAR = "SOCKPOOL_CONFIG";
/** USER:PASS of one more SOCKS5 user, like --socks-user but out of sight of `ps`. */
export const SOCKS_USER_ENV_VAR = "SOCKPOOL_SOCKS_USER";

/** A config option's path: section, [subsection,] key. */
export type OptionKeys = readonly [string, string, ...string[]];

/** The merged raw table plus what the flags applied to it. */
export interface Draft {
  readonly root: Record<string, unknown>;
  /** Dotted path → the name to show in a problem about it (the flag that set it). */
  readonly labels: Map<string, string>;
  /** Dotted paths whose problem was already listed while reading argv. */
  readonly reported: string[];
  readonly problems: string[];
}

export interface FlagDefinition {
  /** Long name without the dashes. */
  readonly name: string;
  readonly short?: string;
  /** Placeholder for the value in --help; absent for switches. */
  readonly value?: string;
  readonly description: string;
  /** The config option the flag sets; --help shows its default from DEFAULT_CONFIG. */
  readonly option?: OptionKeys;
  readonly repeatable?: boolean;
  /** Applies one occurrence to the draft. Absent for flags handled before merging. */
  readonly apply?: (draft: Draft, value: string, flag: string) => void;
}

export const FLAGS: readonly FlagDefinition[] = [
  {
    name: "config",
    value: "FILE",
    description: `read options from a TOML file (default: $${CONFIG_ENV_VAR} if set)`,
  },
  {
    name: "socks",
    value: "HOST:PORT",
    option: ["socks", "listen"],
    description: "SOCKS5 listen address; also turns SOCKS5 on",
    apply: (draft, value, flag) => {
      setOption(draft, ["socks", "listen"], value, flag);
      setOption(draft, ["socks", "enabled"], true, flag);
    },
  },
  {
    name: "no-socks",
    description: "no SOCKS5 listener (then at least one --forward is needed)",
    apply: (draft, _value, flag) => setOption(draft, ["socks", "enabled"], false, flag),
  },
  {
    name: "socks-user",
    value: "USER:PASS",
    repeatable: true,
    description: "add a SOCKS5 user and require password auth; split at the first ':'",
    apply: applySocksUser,
  },
  {
    name: "forward",
    value: "LISTEN=TARGET",
    repeatable: true,
    description: "relay TCP from LISTEN to TARGET, both HOST:PORT (IPv6 as [::1]:80)",
    apply: applyForward,
  },
  {
    name: "http",
    value: "HOST:PORT",
    repeatable: true,
    description:
      "HTTP CONNECT listen address (an [[http]] entry; auth as the SOCKS listener's); repeatable",
    apply: (draft, value, flag) => {
      appendEntry(draft, ["http"], { listen: value }, { listen: flag });
    },
  },
  {
    name: "socks-protocol",
    value: "NAME",
    option: ["socks", "protocol"],
    description: 'what the SOCKS listener speaks: "socks5", or "auto" (SOCKS5 and HTTP CONNECT)',
    apply: textOption(["socks", "protocol"]),
  },
  {
    name: "proxy-protocol",
    option: ["socks", "proxy_protocol"],
    description:
      "the SOCKS listener expects a PROXY protocol header (v1 or v2) first, from a --trusted-proxy",
    apply: (draft, _value, flag) => setOption(draft, ["socks", "proxy_protocol"], true, flag),
  },
  {
    name: "trusted-proxy",
    value: "CIDR",
    repeatable: true,
    option: ["server", "trusted_proxies"],
    description: "a load balancer address or network allowed to send PROXY headers; repeatable",
    apply: (draft, value, flag) => {
      const path = appendEntry(draft, ["server", "trusted_proxies"], value, {});
      if (path !== undefined) draft.labels.set(path, flag);
    },
  },
  {
    name: "udp",
    option: ["udp", "enabled"],
    description: "serve SOCKS5 UDP ASSOCIATE (else answered 07)",
    apply: (draft, _value, flag) => setOption(draft, ["udp", "enabled"], true, flag),
  },
  {
    name: "udp-announce-address",
    value: "IP",
    option: ["udp", "announce_address"],
    description: "the relay address UDP ASSOCIATE replies announce (NAT, containers)",
    apply: textOption(["udp", "announce_address"]),
  },
  {
    name: "workers",
    value: "N",
    option: ["server", "workers"],
    description: "Worker threads; 0 = one per CPU",
    apply: integerOption(["server", "workers"]),
  },
  {
    name: "allow-open-proxy",
    option: ["socks", "allow_open_proxy"],
    description: "let a SOCKS5 listener without auth listen beyond loopback",
    apply: (draft, _value, flag) => setOption(draft, ["socks", "allow_open_proxy"], true, flag),
  },
  {
    name: "share-port",
    option: ["server", "share_port"],
    description: "start even if another process already listens on a listen address",
    apply: (draft, _value, flag) => setOption(draft, ["server", "share_port"], true, flag),
  },
  {
    name: "pool-strategy",
    value: "NAME",
    option: ["pool", "strategy"],
    description: `buffer pool strategy: ${STRATEGY_NAMES.join(", ")}`,
    apply: textOption(["pool", "strategy"]),
  },
  {
    name: "pool-slots",
    value: "N",
    option: ["pool", "slots"],
    description: `buffer pool slots, a power of two in ${LIMITS.pool_slots_min}..${LIMITS.pool_slots_max}`,
    apply: integerOption(["pool", "slots"]),
  },
  {
    name: "slot-bytes",
    value: "N",
    option: ["pool", "slot_bytes"],
    description: `bytes per slot, a multiple of ${LIMITS.slot_bytes_align} up to ${LIMITS.slot_bytes_max}; slots × slot bytes at most ${LIMITS.slab_bytes_max / 2 ** 30} GiB`,
    apply: integerOption(["pool", "slot_bytes"]),
  },
  {
    name: "pool-checked",
    option: ["pool", "checked"],
    description: "check slot ownership on every release (debugging)",
    apply: (draft, _value, flag) => setOption(draft, ["pool", "checked"], true, flag),
  },
  {
    name: "upstream-pool",
    option: ["server", "pool", "enabled"],
    description: "keep warm, never-used upstream connections ready for repeated destinations",
    apply: (draft, _value, flag) => setOption(draft, ["server", "pool", "enabled"], true, flag),
  },
  {
    name: "upstream-pool-per-dest",
    value: "N",
    option: ["server", "pool", "max_idle_per_dest"],
    description: "warm connections kept per destination, all Workers together",
    apply: integerOption(["server", "pool", "max_idle_per_dest"]),
  },
  {
    name: "upstream-pool-total",
    value: "N",
    option: ["server", "pool", "max_total_idle"],
    description: "warm connections kept in all, all Workers together",
    apply: integerOption(["server", "pool", "max_total_idle"]),
  },
  {
    name: "upstream-pool-idle-secs",
    value: "S",
    option: ["server", "pool", "idle_timeout_secs"],
    description: "a warm connection unused this long is closed",
    apply: integerOption(["server", "pool", "idle_timeout_secs"]),
  },
  {
    name: "upstream-pool-connect-ms",
    value: "MS",
    option: ["server", "pool", "connect_timeout_ms"],
    description: "timeout of the pool's own connects (warming, refilling)",
    apply: integerOption(["server", "pool", "connect_timeout_ms"]),
  },
  {
    name: "admin",
    value: "HOST:PORT",
    option: ["admin", "listen"],
    description: 'admin API and status page address, or "off"',
    apply: textOption(["admin", "listen"]),
  },
  {
    name: "log-level",
    value: "LEVEL",
    option: ["log", "level"],
    description: LOG_LEVELS.join(", "),
    apply: textOption(["log", "level"]),
  },
  {
    name: "log-format",
    value: "FORMAT",
    option: ["log", "format"],
    description: LOG_FORMATS.join(", "),
    apply: textOption(["log", "format"]),
  },
  {
    name: "check",
    description:
      "validate the configuration (file, flags, environment), print it as in effect with secrets redacted, exit 0 (valid) or 2",
  },
  {
    name: "hash-password",
    description:
      "read a password from stdin, print its argon2id hash for password_hash or users_file, exit",
  },
  { name: "help", short: "h", description: "show this help and exit" },
  { name: "version", short: "V", description: "print the version and exit" },
];

export const FLAGS_BY_NAME = new Map(FLAGS.map((definition) => [definition.name, definition]));

/** The table at root[sections…], created when absent; undefined when the file put a non-table
 *  on the way. */
function sectionOf(draft: Draft, ...sections: string[]): Record<string, unknown> | undefined {
  let table = draft.root;
  for (const section of sections) {
    const existing = table[section];
    if (existing === undefined) {
      const created: Record<string, unknown> = {};
      table[section] = created;
      table = created;
    } else if (isTable(existing)) {
      table = existing;
    } else {
      return undefined; // the schema reports the file's mistake
    }
  }
  return table;
}

function setOption(draft: Draft, keys: OptionKeys, value: unknown, flag: string): void {
  const section = sectionOf(draft, ...keys.slice(0, -1));
  if (section === undefined) return;
  section[keys[keys.length - 1]!] = value;
  draft.labels.set(formatPath(keys), flag);
}

function textOption(keys: OptionKeys) {
  return (draft: Draft, value: string, flag: string) => setOption(draft, keys, value, flag);
}

// Strict: optional sign and decimal digits only, so "12abc", "0x10", "1e3" and "" are refused.
function parseInteger(text: string): number | undefined {
  if (!/^[+-]?\d+$/.test(text)) return undefined;
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : undefined;
}

function integerOption(keys: OptionKeys) {
  return (draft: Draft, value: string, flag: string) => {
    const parsed = parseInteger(value);
    if (parsed !== undefined) {
      setOption(draft, keys, parsed, flag);
      return;
    }
    draft.problems.push(`${flag}: expected an integer, got ${JSON.stringify(value)}`);
    // Keep the bad text in place so no cross-field check runs on a stale value, and drop the
    // schema's own complaint about it: the line above already says it.
    setOption(draft, keys, value, flag);
    draft.reported.push(formatPath(keys));
  };
}

/**
 * Appends one entry to the list at `keys`. `labels` names each field of the entry after the
 * part of the flag's value it came from. Returns the entry's dotted path, or undefined when the
 * file's value there is not a list (the schema reports that).
 */
function appendEntry(
  draft: Draft,
  keys: readonly [string] | OptionKeys,
  entry: unknown,
  labels: Record<string, string>,
): string | undefined {
  const parent = keys.length === 1 ? draft.root : sectionOf(draft, keys[0]);
  if (parent === undefined) return undefined;
  const key = keys[keys.length - 1]!;
  if (parent[key] === undefined) parent[key] = [];
  const list = parent[key];
  if (!Array.isArray(list)) return undefined;
  list.push(entry);
  const entryPath = formatPath([...keys, list.length - 1]);
  for (const [field, label] of Object.entries(labels)) {
    draft.labels.set(`${entryPath}.${field}`, label);
  }
  return entryPath;
}

function applyForward(draft: Draft, value: string, flag: string): void {
  const split = value.indexOf("=");
  if (split < 0) {
    draft.problems.push(
      `${flag}: expected LISTEN_HOST:PORT=TARGET_HOST:PORT, got ${JSON.stringify(value)}`,
    );
    // A placeholder keeps the list's length honest; its schema complaint is dropped.
    const entryPath = appendEntry(draft, ["forward"], value, {});
    if (entryPath !== undefined) draft.reported.push(entryPath);
    return;
  }
  const entry = { listen: value.slice(0, split), target: value.slice(split + 1) };
  appendEntry(draft, ["forward"], entry, { listen: `${flag} LISTEN`, target: `${flag} TARGET` });
}

/** Appends one user (from a flag, the environment or users_file) and requires password auth. */
export function appendUser(
  draft: Draft,
  user: { username: string; password?: string; password_hash?: string },
  label: string,
): void {
  setOption(draft, ["socks", "auth"], "password", label);
  const labels = Object.fromEntries(Object.keys(user).map((key) => [key, label]));
  appendEntry(draft, ["socks", "users"], user, labels);
}

export function applySocksUser(draft: Draft, value: string, flag: string): void {
  setOption(draft, ["socks", "auth"], "password", flag);
  const split = value.indexOf(":");
  if (split < 0) {
    // The whole value may be a password typed without its user: never echo it.
    draft.problems.push(`${flag}: expected USER:PASS, got ${REDACTED} (no ':' in it)`);
    const entryPath = appendEntry(draft, ["socks", "users"], REDACTED, {});
    if (entryPath !== undefined) draft.reported.push(entryPath);
    return;
  }
  const entry = { username: value.slice(0, split), password: value.slice(split + 1) };
  appendEntry(draft, ["socks", "users"], entry, {
    username: `${flag} USER`,
    password: `${flag} PASS`,
  });
}
