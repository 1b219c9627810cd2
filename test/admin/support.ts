// Helpers for the admin API tests: typed fetches against a spawned sockpool, and a parser of the
// Prometheus text format strict enough to check names, HELP/TYPE and histograms. Not a client
// library: promtool is the reference parser (api.test.ts runs it too).

import { expect } from "bun:test";

export async function getJson<T>(admin: string, path: string, token?: string): Promise<T> {
  const response = await fetch(`http://${admin}${path}`, {
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  expect(response.headers.get("content-type")).toBe("application/json");
  return (await response.json()) as T;
}

export async function getText(admin: string, path: string): Promise<string> {
  const response = await fetch(`http://${admin}${path}`);
  expect(response.status).toBe(200);
  return await response.text();
}

/** The keys of `value`, sorted: to compare a response's field names with the contract's. */
export function keys(value: object): string[] {
  return Object.keys(value).sort();
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Family {
  name: string;
  type: string;
  help: string;
  samples: Sample[];
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)/y;

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  LABEL.lastIndex = 0;
  while (LABEL.lastIndex < text.length) {
    const match = LABEL.exec(text);
    if (match === null) throw new Error(`bad labels: {${text}}`);
    labels[match[1]!] = match[2]!.replace(/\\(["\\n])/g, (_, char: string) =>
      char === "n" ? "\n" : char,
    );
  }
  return labels;
}

function parseValue(text: string): number {
  if (text === "+Inf") return Number.POSITIVE_INFINITY;
  if (text === "-Inf") return Number.NEGATIVE_INFINITY;
  if (text === "NaN") return Number.NaN;
  const value = Number(text);
  if (Number.isNaN(value)) throw new Error(`bad value ${text}`);
  return value;
}

/** Parses an exposition, failing on anything out of place: a sample before its family's HELP and
 *  TYPE, a family declared twice, a sample whose name does not belong to the current family. */
export function parseExposition(text: string): Map<string, Family> {
  expect(text.endsWith("\n")).toBe(true);
  const families = new Map<string, Family>();
  let current: Family | null = null;
  let pendingHelp: { name: string; help: string } | null = null;
  for (const line of text.slice(0, -1).split("\n")) {
    if (line.startsWith("# HELP ")) {
      const [name, ...help] = line.slice(7).split(" ");
      pendingHelp = { name: name!, help: help.join(" ") };
      continue;
    }
    if (line.startsWith("# TYPE ")) {
      const [name, type] = line.slice(7).split(" ");
      if (pendingHelp?.name !== name) throw new Error(`TYPE without HELP first: ${line}`);
      if (families.has(name!)) throw new Error(`family declared twice: ${name}`);
      current = { name: name!, type: type!, help: pendingHelp.help, samples: [] };
      families.set(name!, current);
      pendingHelp = null;
      continue;
    }
    const match = SAMPLE.exec(line);
    if (match === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`);
    const name = match[1]!;
    if (current === null) throw new Error(`sample before any family: ${line}`);
    const allowed =
      current.type === "histogram"
        ? [`${current.name}_bucket`, `${current.name}_sum`, `${current.name}_count`]
        : [current.name];
    if (!allowed.includes(name)) throw new Error(`${name} is not a sample of ${current.name}`);
    current.samples.push({
      name,
      labels: parseLabels(match[3] ?? ""),
      value: parseValue(match[4]!),
    });
  }
  return families;
}

/** The value of the one sample of `family` whose labels include `labels`. */
export function sampleValue(
  families: Map<string, Family>,
  family: string,
  labels: Record<string, string> = {},
  name = family,
): number {
  const found = families
    .get(family)
    ?.samples.filter(
      (sample) =>
        sample.name === name &&
        Object.entries(labels).every(([key, value]) => sample.labels[key] === value),
    );
  if (found === undefined || found.length !== 1) {
    throw new Error(`expected one sample ${name}${JSON.stringify(labels)}, found ${found?.length}`);
  }
  return found[0]!.value;
}
