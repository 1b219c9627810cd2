// --help, generated: one line per entry of the flag table (flags.ts) with its config default,
// then every section of the config file with each key at its default (schema.ts). Not hand-written:
// an option added to either table appears here without touching this file.

import { getPath } from "./fields.ts";
import { CONFIG_ENV_VAR, FLAGS, type FlagDefinition } from "./flags.ts";
import { CONFIG_SECTIONS, DEFAULT_CONFIG } from "./schema.ts";

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
  return [`(default: ${String(getPath(DEFAULT_CONFIG, definition.option))})`];
}

const HELP_WIDTH = 100;

/** `key = default` for each option of a section, as TOML would spell the default. */
function sectionOptions(section: (typeof CONFIG_SECTIONS)[number]): string[] {
  if (section.array) {
    const required = section.required ?? section.keys;
    const needs = required.length === section.keys.length ? "all of them" : required.join(", ");
    return [...section.keys.slice(0, -1), `${section.keys.at(-1)} (each entry needs ${needs})`];
  }
  const defaults = getPath(DEFAULT_CONFIG, section.name.split("."));
  return section.keys.map((key) => {
    const value = getPath(defaults, [key]);
    return value === undefined ? `${key} (unset)` : `${key} = ${JSON.stringify(value)}`;
  });
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
    "Exit codes: 0 stopped cleanly, 1 cannot start (a listen address, the admin API), 2 invalid",
    "configuration (every problem is listed).",
    "",
    "Signals:",
    "  SIGTERM, SIGINT  stop gracefully: /readyz turns 503, keep accepting for",
    "                   server.drain_delay_ms, stop accepting, drain for server.shutdown_timeout_ms,",
    "                   close the rest, exit 0; a second one during the drain closes all at once",
    "  SIGHUP           reload: re-read the config (file, flags, environment, users_file); new",
    "                   connections get it, open ones finish under the old one; an invalid one is",
    "                   logged and ignored; server.workers, server.pool, pool.* (but",
    "                   handshake_share_percent) and admin.* need a restart",
    "  SIGUSR1          reserved for reopening the access log; logged, never fatal",
    "  SIGUSR2          ignored with a log line (SOCKPOOL_FAULT_INJECTION=1: crashes Worker 0)",
    "",
    "Environment:",
    `  ${CONFIG_ENV_VAR.padEnd(28)}the config file when --config is not given`,
    `  ${"SOCKPOOL_SOCKS_USER".padEnd(28)}USER:PASS of one more user, like --socks-user (ps shows argv)`,
    `  ${"SOCKPOOL_NATIVE=off".padEnd(28)}use the TypeScript free list instead of the Zig library`,
    `  ${"SOCKPOOL_NATIVE_LIB=PATH".padEnd(28)}load the Zig library from PATH`,
    `  ${"SOCKPOOL_FAULT_INJECTION=1".padEnd(28)}testing only: SIGUSR2 crashes Worker 0`,
    "",
    "Example:",
    `  sockpool ${EXAMPLE_ARGV.join(" ")}`,
    "",
    "Example config file:",
    ...exampleToml,
    "",
  ].join("\n");
}
