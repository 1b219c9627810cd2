// The valibot building blocks of the config schema: typed fields with their "expected …" phrase,
// strict tables, and path helpers for checks across fields. Not the options themselves (schema.ts)
// and not the wording around a problem (errors.ts).

import * as v from "valibot";
import { LIMITS, type TimeoutRange } from "../limits.ts";
import { parseNetwork } from "../policy/network.ts";
import { parseHostPort } from "../protocol/host-port.ts";

// ── Building blocks ────────────────────────────────────────────────────────────────────────────
// Each field yields at most ONE issue, whose message is the "expected …" phrase; errors.ts adds
// the path and the value that was found.

export function integer(expected: string, isAllowed: (value: number) => boolean) {
  return v.pipe(
    v.number(expected),
    v.check((value: number) => Number.isInteger(value) && isAllowed(value), expected),
  );
}

export function integerBetween(
  min: number,
  max: number,
  expected = `an integer between ${min} and ${max}`,
) {
  return integer(expected, (value) => value >= min && value <= max);
}

export function timeoutMs({ min_ms: min, max_ms: max }: TimeoutRange, zeroMeans = "") {
  const note = min === 0 ? ` (0 ${zeroMeans})` : "";
  return integerBetween(min, max, `milliseconds between ${min} and ${max}${note}`);
}

export function oneOf<const T extends readonly [string, ...string[]]>(options: T) {
  return v.picklist(
    options,
    `one of ${options.map((option) => JSON.stringify(option)).join(", ")}`,
  );
}

export const flag = v.boolean("true or false");

/** An IP address or a CIDR network, for access rules. */
export const network = v.pipe(
  v.string('an IP address or network like "10.0.0.0/8" or "fe80::/10"'),
  v.check(
    (text: string) => parseNetwork(text) !== null,
    'an IP address or network like "10.0.0.0/8" or "fe80::/10"',
  ),
);

const DOMAIN_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i;

/** "example.com", or "*.example.com" for every name under it (not example.com itself). */
export const domainPattern = v.pipe(
  v.string('a domain like "example.com" or "*.example.com"'),
  v.check((text: string) => {
    const name = text.startsWith("*.") ? text.slice(2) : text;
    const labels = (name.endsWith(".") ? name.slice(0, -1) : name).split(".");
    return (
      name.length <= LIMITS.host_bytes_max && labels.every((label) => DOMAIN_LABEL.test(label))
    );
  }, 'a domain like "example.com" or "*.example.com"'),
);

const PORT_RANGE = /^(\d{1,5})(?:-(\d{1,5}))?$/;

/** A port (80) or an inclusive range ("8000-8999"). */
export const portEntry = v.custom<number | string>((value) => {
  if (typeof value === "number")
    return Number.isInteger(value) && value >= 1 && value <= LIMITS.port_max;
  if (typeof value !== "string") return false;
  const match = PORT_RANGE.exec(value);
  if (match === null) return false;
  const low = Number(match[1]);
  const high = match[2] === undefined ? low : Number(match[2]);
  return low >= 1 && low <= high && high <= LIMITS.port_max;
}, `a port 1..65535 or a range like "8000-8999"`);

export function address(portMin: 0 | 1, purpose: string, example: string) {
  const expected = `HOST:PORT to ${purpose}, port ${portMin}..${LIMITS.port_max} (IPv6 as "${example}")`;
  return v.pipe(
    v.string(expected),
    v.check((text: string) => (parseHostPort(text)?.port ?? -1) >= portMin, expected),
  );
}

const textEncoder = new TextEncoder();

const { credential_bytes_min: credentialMin, credential_bytes_max: credentialMax } = LIMITS;
export const credential = v.pipe(
  v.string(`a string of ${credentialMin}..${credentialMax} bytes`),
  v.check((text: string) => {
    const bytes = textEncoder.encode(text).length;
    return bytes >= credentialMin && bytes <= credentialMax;
  }, `${credentialMin}..${credentialMax} bytes`),
);

/** Hash formats Bun.password.verify reads: argon2 (PHC strings) and bcrypt. */
export const PASSWORD_HASH =
  /^\$(?:argon2(?:id|i|d)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+|2[aby]\$\d\d\$[./A-Za-z0-9]{53})$/;

export const passwordHash = v.pipe(
  v.string("a password hash from sockpool --hash-password"),
  v.check(
    (text: string) => PASSWORD_HASH.test(text),
    'an argon2 ("$argon2id$…") or bcrypt ("$2b$…") hash, as sockpool --hash-password prints',
  ),
);

export function isTable(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype: unknown = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null; // not an array, date or class
}

/**
 * A TOML table with a fixed set of keys. Like v.strictObject, but it reports EVERY unknown key
 * (v.strictObject stops at the first one, so two typos would take two runs to find). The final
 * transform only narrows the type: input with an unknown key never gets that far.
 */
export function table<const TEntries extends v.ObjectEntries>(entries: TEntries) {
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

// ── Paths, for checks across fields ────────────────────────────────────────────────────────────

export type IssuePath = [v.IssuePathItem, ...v.IssuePathItem[]];
export type PathKey = string | number;

export function isValidAt(
  issues: readonly v.BaseIssue<unknown>[] | undefined,
  keys: readonly PathKey[],
) {
  for (const issue of issues ?? []) {
    const issueKeys = issue.path?.map((item) => item.key) ?? [];
    const shared = Math.min(keys.length, issueKeys.length);
    if (keys.slice(0, shared).every((key, index) => key === issueKeys[index])) return false;
  }
  return true;
}

export function issuePath(root: unknown, keys: readonly [PathKey, ...PathKey[]]): IssuePath {
  const items: v.IssuePathItem[] = [];
  let input = root;
  for (const key of keys) {
    const value = (input as Record<PathKey, unknown>)[key];
    items.push({ type: "unknown", origin: "value", input, key, value });
    input = value;
  }
  return items as IssuePath;
}

export function getPath(root: unknown, keys: readonly PathKey[]): unknown {
  let value = root;
  for (const key of keys) {
    if (typeof value !== "object" || value === null) return undefined;
    value = (value as Record<PathKey, unknown>)[key];
  }
  return value;
}
