// The logger: levels, both formats, and that no client-supplied value can forge a line or drive a
// terminal (control characters escaped in text and JSON alike, recoverable by a JSON parser).

import { describe, expect, test } from "bun:test";
import { createLogger, journalOnStderr, type LogFormat } from "../src/log.ts";

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

describe("the systemd journal", () => {
  test("stderr is the journal only when JOURNAL_STREAM names its device and inode", () => {
    const stat = () => ({ dev: 27, ino: 9041 });
    expect(journalOnStderr({ JOURNAL_STREAM: "27:9041" }, stat)).toBe(true);
    expect(journalOnStderr({ JOURNAL_STREAM: "27:9042" }, stat)).toBe(false); // redirected since
    expect(journalOnStderr({}, stat)).toBe(false);
    const closed = () => {
      throw new Error("EBADF");
    };
    expect(journalOnStderr({ JOURNAL_STREAM: "27:9041" }, closed)).toBe(false);
  });

  test("each line starts with its syslog priority, in both formats", () => {
    for (const format of ["text", "json"] as const) {
      const lines: string[] = [];
      const log = createLogger({
        level: "debug",
        format,
        write: (line) => lines.push(line),
        syslogPriority: true,
      });
      log.debug("d");
      log.info("i");
      log.warn("w");
      log.error("e");
      expect(lines.map((line) => line.slice(0, 3))).toEqual(["<7>", "<6>", "<4>", "<3>"]);
    }
  });

  test("a real sockpool whose stderr is the journal writes priorities; elsewhere it does not", async () => {
    // The shell sets JOURNAL_STREAM to its stderr's device:inode, as systemd does for a service.
    const start = async (journal: boolean) => {
      const script = `${journal ? "export JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); " : ""}exec "$0" src/main.ts --socks 127.0.0.1:0 --workers 1 --admin off`;
      const child = Bun.spawn(["bash", "-c", script, process.execPath], {
        cwd: new URL("..", import.meta.url).pathname,
        stdout: "ignore",
        stderr: "pipe",
      });
      const decoder = new TextDecoder();
      let text = "";
      for await (const chunk of child.stderr) {
        text += decoder.decode(chunk);
        if (text.includes(" ready ")) break;
      }
      child.kill("SIGTERM");
      await child.exited;
      return text.split("\n").filter((line) => line.includes(" ready "));
    };
    const [journal] = await start(true);
    expect(journal).toStartWith("<6>");
    const [plain] = await start(false);
    expect(plain).toMatch(/^\d{4}-/);
  }, 30_000);
});
