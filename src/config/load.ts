// Loading: argv and $SOCKPOOL_CONFIG to a validated Config plus start-up warnings. Defaults ← TOML
// file ← flags, then ONE validation of the merged whole, so every problem in the file and on the
// command line is listed in a single run. Not the flag table (flags.ts), not the schema (schema.ts)
// and not printing or exiting: main prints what this returns.
//
//   argv ──parseArgs(tokens)──▶ flag problems, --help / --version
//     │
//     ├─ --config FILE (or $SOCKPOOL_CONFIG) ──readFile──▶ smol-toml parse ──▶ raw table
//     ├─ flags applied on top of the raw table; each records the path it set and its own name
//     └─ ConfigSchema on the merged table ──▶ issues named by flag where a flag set the value

import type { Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { parse as parseToml, TomlError } from "smol-toml";
import { parseArgs } from "node:util";
import { formatIssue, formatPath, issueKeys } from "./errors.ts";
import { getPath, PASSWORD_HASH } from "./fields.ts";
import {
  appendUser,
  applySocksUser,
  CONFIG_ENV_VAR,
  type Draft,
  FLAGS,
  FLAGS_BY_NAME,
  type FlagDefinition,
  SOCKS_USER_ENV_VAR,
} from "./flags.ts";
import { helpText } from "./help.ts";
import { renamedOptionWarnings } from "./renamed.ts";
import { type Config, validateConfig } from "./schema.ts";

export { CONFIG_ENV_VAR };

/** Returns the file's text, or undefined when there is no such file. Other failures throw. */
export type ReadFile = (path: string) => Promise<string | undefined>;

export type ResolveResult =
  /** `warnings` (deprecated keys, …) are logged at start-up once the logger exists. */
  | {
      kind: "config";
      config: Config;
      warnings: string[];
      /** --check: print it, do not run. */
      check: boolean;
      /** Whether the file or a flag gave this option (false: it is the default). */
      given: (keys: readonly string[]) => boolean;
    }
  | { kind: "help"; text: string }
  | { kind: "version" }
  /** --hash-password: read a password from stdin and print its hash. */
  | { kind: "hash-password" }
  | { kind: "error"; problems: string[] };

export interface ResolveOptions {
  /** Arguments after the program name. */
  readonly argv: readonly string[];
  readonly readFile: ReadFile;
  /** SOCKPOOL_CONFIG (the config file when --config is not given) and SOCKPOOL_SOCKS_USER. */
  readonly env?: Readonly<Record<string, string | undefined>>;
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

const TOML_ERROR_PREFIX = "Invalid TOML document: ";

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
    return { table: parseToml(text) as Record<string, unknown> };
  } catch (error) {
    if (!(error instanceof TomlError)) throw error; // a bug in the parser, not in the file
    // smol-toml's message is "Invalid TOML document: WHAT" plus a code excerpt with a caret; the
    // position is given here instead, so the problem stays one line.
    const what = error.message.split("\n")[0]!;
    const shown = what.startsWith(TOML_ERROR_PREFIX) ? what.slice(TOML_ERROR_PREFIX.length) : what;
    return {
      problem: `config file ${path}, line ${error.line}, column ${error.column}: invalid TOML: ${shown}`,
    };
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
  if (named("hash-password").length > 0) return { kind: "hash-password" };

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

  // A user from the environment, for single-user setups: argv is visible to everyone in `ps`.
  const envUser = options.env?.[SOCKS_USER_ENV_VAR];
  if (envUser) applySocksUser(draft, envUser, `$${SOCKS_USER_ENV_VAR}`);
  const usersFile = getPath(draft.root, ["socks", "users_file"]);
  if (typeof usersFile === "string" && usersFile !== "") {
    await readUsersFile(draft, usersFile, options.readFile);
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
  return {
    kind: "config",
    config: result.output,
    warnings: renamedOptionWarnings(draft.root),
    check: named("check").length > 0,
    given: (keys) => getPath(draft.root, keys) !== undefined,
  };
}

/**
 * Appends the users of socks.users_file to socks.users: one `username:hash` per line, with blank
 * lines and `#` comments; the hash is what `sockpool --hash-password` prints. A bad line is a
 * problem naming its number and never its text, which may be a password pasted by mistake.
 */
async function readUsersFile(draft: Draft, path: string, readFile: ReadFile): Promise<void> {
  const where = `socks.users_file ${path}`;
  let text: string | undefined;
  try {
    text = await readFile(path);
  } catch (error) {
    draft.problems.push(`${where}: cannot read: ${errorMessage(error)}`);
    return;
  }
  if (text === undefined) {
    draft.problems.push(`${where}: not found`);
    return;
  }
  const lines = text.split("\n");
  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const username = line.slice(0, colon);
    const hash = line.slice(colon + 1);
    if (colon <= 0 || !PASSWORD_HASH.test(hash)) {
      draft.problems.push(
        `${where}, line ${index + 1}: expected username:hash with a hash from sockpool --hash-password`,
      );
      continue;
    }
    appendUser(draft, { username, password_hash: hash }, `${where}, line ${index + 1}`);
  }
}

/** The real file reader: "no such file" is undefined; a directory is an error saying so. */
export const readConfigFile: ReadFile = async (path) => {
  let info: Stats;
  try {
    info = await stat(path);
  } catch (error) {
    if ((error as { code?: string }).code === "ENOENT") return undefined;
    throw error;
  }
  if (info.isDirectory()) throw new Error("is a directory, not a TOML file");
  return await Bun.file(path).text();
};

/** resolveConfig with the real file system and environment. */
export function loadConfig(
  argv: readonly string[] = Bun.argv.slice(2),
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ResolveResult> {
  return resolveConfig({ argv, readFile: readConfigFile, env });
}
