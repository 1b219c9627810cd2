// Configuration problems as text: one line per problem, "path: expected …, got …".
// Not validation itself (schema.ts) and not printing or exiting (the caller's job).

import type * as v from "valibot";

/** Exit status for any configuration problem, flags or file. */
export const CONFIG_EXIT_CODE = 2;

export class ConfigError extends Error {
  readonly code = "CONFIG_INVALID";
  readonly problems: readonly string[];

  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((problem) => `  ${problem}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

export const REDACTED = "<redacted>";

const SHOWN_CHARS_MAX = 80;

/** Renders path keys as written in the docs: `socks.users[0].password`. */
export function formatPath(keys: readonly unknown[]): string {
  return keys
    .map((key, index) => {
      if (typeof key === "number") return `[${key}]`;
      return index === 0 ? String(key) : `.${String(key)}`;
    })
    .join("");
}

export function issueKeys(issue: v.BaseIssue<unknown>): unknown[] {
  return issue.path?.map((item) => item.key) ?? [];
}

/**
 * Secrets never appear in output. A value is withheld when its path ends in `password` or
 * `token`, and also when it sits inside `users` (a whole user entry, or a malformed list, may hold
 * one), except for a username or an empty list.
 */
export function isSecretPath(keys: readonly unknown[], value: unknown): boolean {
  const last = keys.at(-1);
  if (last === "password" || last === "password_hash" || last === "token") return true;
  if (!keys.includes("users") || last === "username") return false;
  return !(Array.isArray(value) && value.length === 0);
}

/** A value as a reader would type it: strings quoted, tables and arrays as JSON, cut short. */
export function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "number" || typeof value === "bigint" || typeof value === "boolean") {
    return String(value);
  }
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  const chars = Array.from(text); // code points, so a cut never splits a surrogate pair
  return chars.length > SHOWN_CHARS_MAX ? `${chars.slice(0, SHOWN_CHARS_MAX - 1).join("")}…` : text;
}

/**
 * One line for one issue. `label` replaces the dotted path, e.g. with the flag that set the value;
 * redaction is always decided on the real path.
 *
 *   pool.slots: expected a power of two between 16 and 1048576, got 1000
 *   pool.slotz: unknown option (did you mean "slots"?)
 *   forward[0].target: required option missing
 */
export function formatIssue(issue: v.BaseIssue<unknown>, label?: string): string {
  const keys = issueKeys(issue);
  const where = label ?? (keys.length === 0 ? "config" : formatPath(keys));
  const last = issue.path?.at(-1);
  if (last?.origin === "key") {
    // Issues about a key itself: valibot reports a missing key with input undefined, and our
    // table() reports an unknown key with the key as input.
    if (issue.input === undefined) return `${where}: required option missing`;
    return `${where}: unknown option (${issue.message})`;
  }
  const value = last === undefined ? issue.input : last.value;
  const shown = isSecretPath(keys, value) ? REDACTED : showValue(value);
  return `${where}: expected ${issue.message}, got ${shown}`;
}

/** A deep copy of a validated config with every secret (a password or token) replaced by REDACTED. */
export function redactSecrets<T>(value: T, keys: readonly unknown[] = []): T {
  const last = keys.at(-1);
  if (last === "password" || last === "password_hash" || last === "token") return REDACTED as T;
  if (Array.isArray(value)) {
    return value.map((item, index) => redactSecrets(item, [...keys, index])) as T;
  }
  if (typeof value === "object" && value !== null) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value))
      copy[key] = redactSecrets(item, [...keys, key]);
    return copy as T;
  }
  return value;
}
