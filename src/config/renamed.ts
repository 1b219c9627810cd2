// Options that moved: where each old key now lives, and the start-up warning that names the new
// key. Not the moving itself (the schema's final transform does it) nor the clash check (relations.ts).

import { formatPath } from "./errors.ts";
import { getPath } from "./fields.ts";

/** An option that moved from one section to another under the same key. */
export interface RenamedOption {
  readonly key: string;
  /** The section it was in; still accepted there, with a warning. */
  readonly from: string;
  /** The section it belongs to now. */
  readonly to: string;
}

/** socks.connect_timeout_ms and socks.dns_timeout_ms govern every upstream dial, forwards too. */
export const RENAMED_OPTIONS: readonly RenamedOption[] = [
  { key: "connect_timeout_ms", from: "socks", to: "upstream" },
  { key: "dns_timeout_ms", from: "socks", to: "upstream" },
];

export function oldPath(option: RenamedOption): [string, string] {
  return [option.from, option.key];
}

export function newPath(option: RenamedOption): [string, string] {
  return [option.to, option.key];
}

/** Keys deprecated in `section`, which --help and the README do not list there. */
export function deprecatedKeys(section: string): string[] {
  return RENAMED_OPTIONS.filter((option) => option.from === section).map((option) => option.key);
}

/** One warning per old key present in the raw (unvalidated) table, naming the new key. */
export function renamedOptionWarnings(root: unknown): string[] {
  return RENAMED_OPTIONS.filter((option) => getPath(root, oldPath(option)) !== undefined).map(
    (option) =>
      `${formatPath(oldPath(option))} is deprecated: write it as ${option.key} under [${option.to}] ` +
      `(${formatPath(newPath(option))}); its value is used there until then`,
  );
}
