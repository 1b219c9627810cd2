// The logger: levels, both formats, and that no client-supplied value can forge a line or drive a
// terminal (control characters escaped in text and JSON alike, recoverable by a JSON parser).

import { expect, test } from "bun:test";
import { createLogger, type LogFormat } from "../src/log.ts";

function capture(format: LogFormat) {
  const lines: string[] = [];
  const log = createLogger({ level: "info", format, write: (line) => lines.push(line) });
  return { log, lines };
}

// What an attacker sends as a username or a domain: ESC [2J (clear screen), BEL, CR LF with a
// forged line, NEL (C1), CSI (C1), DEL, U+2028, and a bidi override.
// biome-ignore lint/suspicious/noControlCharactersInRegex: the check is that none are left
const LEFT_RAW = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/;

const HOSTILE =
  "alice\u001b[2J\u0007\r\n2026-01-01T00:00:00.000Z INFO  forged\u0085\u009b31m\u007f\u2028\u202eevil";

test("text: a hostile value stays on one line, quoted, every control escaped and recoverable", () => {
  const { log, lines } = capture("text");
  log.info("authentication failed", { username: HOSTILE });
  expect(lines).toHaveLength(1);
  const line = lines[0];
  expect(line.endsWith("\n")).toBe(true);
  expect(line.slice(0, -1)).not.toMatch(LEFT_RAW);
  const quoted = line.slice(line.indexOf("username=") + "username=".length, -1);
  expect(JSON.parse(quoted)).toBe(HOSTILE);
});

test("json: the same value is escaped beyond what JSON.stringify does, and parses back", () => {
  const { log, lines } = capture("json");
  log.info("authentication failed", { username: HOSTILE });
  expect(lines).toHaveLength(1);
  expect(lines[0].slice(0, -1)).not.toMatch(LEFT_RAW);
  expect(JSON.parse(lines[0]).username).toBe(HOSTILE);
});

test("text: ordinary values stay bare; spaces, quotes, = and backslashes are quoted", () => {
  const { log, lines } = capture("text");
  log.info("connection", {
    client: "127.0.0.1:5000",
    target: "a b",
    note: 'x"y',
    eq: "k=v",
    bs: "a\\b",
  });
  expect(lines[0]).toContain(" client=127.0.0.1:5000 ");
  expect(lines[0]).toContain(' target="a b"');
  expect(lines[0]).toContain(' note="x\\"y"');
  expect(lines[0]).toContain(' eq="k=v"');
  expect(lines[0]).toContain(' bs="a\\\\b"');
});

test("levels below the threshold are dropped", () => {
  const { log, lines } = capture("text");
  log.debug("hidden");
  log.warn("shown");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("WARN  shown");
});
