// Command line to Config: defaults ← TOML file ← flags, then ONE validation of the merged whole,
// so every problem in the file and on the command line is listed in a single run.
// Not the schema (schema.ts) and not printing or exiting: main prints what this returns.
//
//   argv ──parseArgs(tokens)──▶ flag problems, --help / --version
//     │
//     ├─ --config FILE (or $SOCKPOOL_CONFIG) ──readFile──▶ Bun.TOML.parse ──▶ raw table
//     ├─ flags applied on top of the raw table; each records the path it set and its own name
//     └─ ConfigSchema on the merged table ──▶ issues named by flag where a flag set the value
//
// Flags that take a list (--forward, --socks-user) APPEND to the file's entries; every other
// flag replaces the file's value.

import { parseArgs } from "node:util";
import { LIMITS } from "../limits.ts";
import { STRATEGY_NAMES } from "../pool/strategies/names.ts";
import { formatIssue, formatPath, issueKeys, REDACTED } from "./errors.ts";
import {
  CONFIG_SECTIONS,
  type Config,
  DEFAULT_CONFIG,
  LOG_FORMATS,
  LOG_LEVELS,
  validateConfig,
} from "./schema.ts";

/** Returns the file's text, or undefined when there is no such file. Other failures throw. */
export type ReadFile = (path: string) => Promise<string | undefined>;

export type ResolveResult =
  | { kind: "config"; config: Config }
  | { kind: "help"; text: string }
  | { kind: "version" }
  | { kind: "error"; problems: string[] };

export interface ResolveOptions {
  /** Arguments after the program name. */
  readonly argv: readonly string[];
  readonly readFile: ReadFile;
  /** Only SOCKPOOL_CONFIG is read: the config file to use when --config is not given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

export const CONFIG_ENV_VAR = "SOCKPOOL_CONFIG";

// ── The flag table: drives parsing, mapping to config paths, and --help ────────────────────────

type OptionKeys = readonly [string, string];

/** The merged raw table plus what the flags applied to it. */
interface Draft {
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
    name: "workers",
    value: "N",
    option: ["server", "workers"],
    description: "Worker threads; 0 = one per CPU",
    apply: integerOption(["server", "workers"]),
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
    description: `bytes per slot, a multiple of ${LIMITS.slot_bytes_align} up to ${LIMITS.slot_bytes_max}`,
    apply: integerOption(["pool", "slot_bytes"]),
  },
  {
    name: "pool-checked",
    option: ["pool", "checked"],
    description: "check slot ownership on every release (debugging)",
    apply: (draft, _value, flag) => setOption(draft, ["pool", "checked"], true, flag),
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
  { name: "help", short: "h", description: "show this help and exit" },
  { name: "version", short: "V", description: "print the version and exit" },
];

const FLAGS_BY_NAME = new Map(FLAGS.map((definition) => [definition.name, definition]));

function get(root: unknown, keys: readonly (string | number)[]): unknown {
  let value = root;
  for (const key of keys) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The table at root[section], created when absent; undefined when the file put a non-table there. */
function sectionOf(draft: Draft, section: string): Record<string, unknown> | undefined {
  const existing = draft.root[section];
  if (existing === undefined) {
    const created: Record<string, unknown> = {};
    draft.root[section] = created;
    return created;
  }
  return isTable(existing) ? existing : undefined; // the schema reports the file's mistake
}

function setOption(draft: Draft, keys: OptionKeys, value: unknown, flag: string): void {
  const section = sectionOf(draft, keys[0]);
  if (section === undefined) return;
  section[keys[1]] = value;
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

function applySocksUser(draft: Draft, value: string, flag: string): void {
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

// ── argv ───────────────────────────────────────────────────────────────────────────────────────

interface FlagUse {
  readonly definition: FlagDefinition;
  readonly rawName: string;
  readonly value: string;
}

/**
 * util.parseArgs runs with strict: false and its tokens are checked here with the same rules as
 * strict mode (unknown flags, missing values, values on switches, positionals), because strict
 * mode throws at the first problem and this lists them all.
 */
function readArgv(argv: readonly string[], problems: string[]): FlagUse[] {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const definition of FLAGS) {
    options[definition.name] = {
      type: definition.value === undefined ? "boolean" : "string",
      ...(definition.short === undefined ? {} : { short: definition.short }),
    };
  }
  const { tokens } = parseArgs({
    args: [...argv],
    options,
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const uses: FlagUse[] = [];
  for (const token of tokens) {
    if (token.kind === "option-terminator") continue;
    if (token.kind === "positional") {
      problems.push(
        `${JSON.stringify(token.value)}: unexpected argument (sockpool takes only options; see sockpool --help)`,
      );
      continue;
    }
    const definition = FLAGS_BY_NAME.get(token.name);
    if (definition === undefined) {
      problems.push(`${token.rawName}: unknown option (see sockpool --help)`);
      continue;
    }
    if (definition.value === undefined) {
      if (token.value !== undefined) {
        problems.push(`${token.rawName}: takes no value, got ${JSON.stringify(token.value)}`);
        continue;
      }
      uses.push({ definition, rawName: token.rawName, value: "" });
      continue;
    }
    if (token.value === undefined) {
      problems.push(`${token.rawName}: expected a value (${definition.value}), got nothing`);
      continue;
    }
    if (!token.inlineValue && token.value.startsWith("-")) {
      // "--workers --pool-slots 64": almost surely a forgotten value, as strict parseArgs says.
      problems.push(
        `${token.rawName}: expected a value (${definition.value}), got option ${JSON.stringify(token.value)} (write ${token.rawName}=VALUE for a value starting with '-')`,
      );
      continue;
    }
    uses.push({ definition, rawName: token.rawName, value: token.value });
  }
  return uses;
}

// ── Resolution ─────────────────────────────────────────────────────────────────────────────────

const TOML_ERROR_PREFIX = "TOML Parse error: ";

async function readConfigTable(
  path: string,
  readFile: ReadFile,
): Promise<{ table: Record<string, unknown> } | { problem: string }> {
  let text: string | undefined;
  try {
    text = await readFile(path);
  } catch (error) {
    return { problem: `config file ${path}: cannot read: ${errorMessage(error)}` };
  }
  if (text === undefined) return { problem: `config file ${path}: not found` };
  try {
    return { table: Bun.TOML.parse(text) as Record<string, unknown> };
  } catch (error) {
    const message = errorMessage(error);
    const shown = message.startsWith(TOML_ERROR_PREFIX)
      ? message.slice(TOML_ERROR_PREFIX.length)
      : message;
    return { problem: `config file ${path}: invalid TOML: ${shown}` };
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function labelFor(draft: Draft, keys: readonly unknown[]): string | undefined {
  for (let length = keys.length; length > 0; length--) {
    const label = draft.labels.get(formatPath(keys.slice(0, length)));
    if (label !== undefined) return label;
  }
  return undefined;
}

function isUnder(path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}.`) || path.startsWith(`${ancestor}[`);
}

/** Pure apart from the injected readFile: argv (+ file) to a validated Config or every problem. */
export async function resolveConfig(options: ResolveOptions): Promise<ResolveResult> {
  const problems: string[] = [];
  const uses = readArgv(options.argv, problems);
  const named = (name: string) => uses.filter((use) => use.definition.name === name);

  if (named("help").length > 0) return { kind: "help", text: helpText() };
  if (named("version").length > 0) return { kind: "version" };

  const configPath = named("config").at(-1)?.value ?? (options.env?.[CONFIG_ENV_VAR] || undefined);
  let root: Record<string, unknown> = {};
  let fileRead = true;
  if (configPath !== undefined) {
    const loaded = await readConfigTable(configPath, options.readFile);
    if ("problem" in loaded) {
      problems.push(loaded.problem);
      fileRead = false;
    } else {
      root = loaded.table;
    }
  }

  // Both: say so once, and apply only --socks so nothing downstream reacts to the conflict.
  const socksClash = named("socks").length > 0 && named("no-socks").length > 0;
  if (socksClash) problems.push("--socks, --no-socks: expected one or the other, got both");

  const draft: Draft = { root, labels: new Map(), reported: [], problems };
  for (const use of uses) {
    if (socksClash && use.definition.name === "no-socks") continue;
    use.definition.apply?.(draft, use.value, use.rawName);
  }

  const result = validateConfig(draft.root);
  if (!result.success) {
    for (const issue of result.issues) {
      const keys = issueKeys(issue);
      const path = formatPath(keys);
      if (draft.reported.some((reported) => isUnder(path, reported))) continue;
      const label = labelFor(draft, keys);
      // Without the file, problems with defaults standing in for it would mislead: keep only
      // those about values the flags set.
      if (!fileRead && label === undefined) continue;
      problems.push(formatIssue(issue, label));
    }
  }
  if (problems.length > 0 || !result.success) return { kind: "error", problems };
  return { kind: "config", config: result.output };
}

/** The real file reader: Bun.file, with "no such file" as undefined. */
export const readConfigFile: ReadFile = async (path) => {
  const file = Bun.file(path);
  if (!(await file.exists())) return undefined;
  return await file.text();
};

/** resolveConfig with the real file system and environment. */
export function loadConfig(
  argv: readonly string[] = Bun.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ResolveResult> {
  return resolveConfig({ argv, readFile: readConfigFile, env });
}

// ── --help ─────────────────────────────────────────────────────────────────────────────────────

/** The command line in the help's example; a test checks that it resolves. */
export const EXAMPLE_ARGV: readonly string[] = [
  "--socks",
  "0.0.0.0:1080",
  "--socks-user",
  "alice:s3cret",
  "--forward",
  "127.0.0.1:8080=10.0.0.5:80",
];

/** The config file in the help's example; a test checks that it validates. */
export const EXAMPLE_TOML = `[socks]
listen = "0.0.0.0:1080"
auth = "password"
users = [{ username = "alice", password = "s3cret" }]

[[forward]]
listen = "127.0.0.1:8080"
target = "10.0.0.5:80"

[pool]
strategy = "queue"
slots = 8192`;

function flagColumn(definition: FlagDefinition): string {
  const short = definition.short === undefined ? "    " : `-${definition.short}, `;
  const value = definition.value === undefined ? "" : ` ${definition.value}`;
  return `${short}--${definition.name}${value}`;
}

function flagDefault(definition: FlagDefinition): string[] {
  if (definition.option === undefined || definition.value === undefined) return [];
  return [`(default: ${String(get(DEFAULT_CONFIG, definition.option))})`];
}

const HELP_WIDTH = 100;

/** `key = default` for each option of a section, as TOML would spell the default. */
function sectionOptions(section: (typeof CONFIG_SECTIONS)[number]): string[] {
  if (section.array) return [`${section.keys.join(", ")} (each entry needs all of them)`];
  const defaults = get(DEFAULT_CONFIG, section.name.split("."));
  return section.keys.map((key) => `${key} = ${JSON.stringify(get(defaults, [key]))}`);
}

/** Joins pieces with spaces into lines no wider than HELP_WIDTH; later lines are indented. */
function wrap(first: string, pieces: readonly string[], indent: number): string[] {
  const lines: string[] = [];
  let line = first;
  let lineHasPiece = false;
  for (const piece of pieces) {
    const candidate = lineHasPiece ? `${line} ${piece}` : `${line}${piece}`;
    if (candidate.length > HELP_WIDTH && lineHasPiece) {
      lines.push(line);
      line = `${" ".repeat(indent)}${piece}`;
    } else {
      line = candidate;
    }
    lineHasPiece = true;
  }
  lines.push(line);
  return lines;
}

export function helpText(): string {
  const width = Math.max(...FLAGS.map((definition) => flagColumn(definition).length)) + 2;
  const flagLines = FLAGS.flatMap((definition) => {
    const repeat = definition.repeatable ? "; repeatable" : "";
    const pieces = [...`${definition.description}${repeat}`.split(" "), ...flagDefault(definition)];
    return wrap(`  ${flagColumn(definition).padEnd(width)}`, pieces, width + 2);
  });
  const headerWidth = Math.max(...CONFIG_SECTIONS.map((section) => section.name.length)) + 6;
  const sectionLines = CONFIG_SECTIONS.flatMap((section) => {
    const header = section.array ? `[[${section.name}]]` : `[${section.name}]`;
    const options = sectionOptions(section);
    const pieces = options.map((option, index) =>
      index < options.length - 1 ? `${option},` : option,
    );
    return wrap(`  ${header.padEnd(headerWidth)}`, pieces, headerWidth + 2);
  });
  const exampleToml = EXAMPLE_TOML.split("\n").map((line) => (line === "" ? "" : `  ${line}`));
  return [
    "sockpool: a SOCKS5 and TCP-forwarding proxy",
    "",
    "Usage: sockpool [options]",
    "",
    "Options (each overrides the config file; --forward and --socks-user add to its lists):",
    ...flagLines,
    "",
    "Config file (TOML) sections, with each option at its default:",
    ...sectionLines,
    "",
    "Example:",
    `  sockpool ${EXAMPLE_ARGV.join(" ")}`,
    "",
    "Example config file:",
    ...exampleToml,
    "",
  ].join("\n");
}
