// The [upstream] section and its deprecated aliases socks.connect_timeout_ms / socks.dns_timeout_ms:
// still accepted, moved to [upstream] with a warning naming the new key, an error when both are given.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatIssue } from "../../src/config/errors.ts";
import { resolveConfig } from "../../src/config/load.ts";
import { RENAMED_OPTIONS } from "../../src/config/renamed.ts";
import { parseConfig, validateConfig } from "../../src/config/schema.ts";
import { runBun } from "../support/spawn.ts";

const MAIN = new URL("../../src/main.ts", import.meta.url);

function problems(input: unknown): string[] {
  const result = validateConfig(input);
  return result.success ? [] : result.issues.map((issue) => formatIssue(issue));
}

function resolveFile(toml: string) {
  return resolveConfig({ argv: ["--config", "s.toml"], readFile: async () => toml });
}

describe("[upstream]", () => {
  test("sets the connect and DNS timeouts of every upstream dial", () => {
    const config = parseConfig({ upstream: { connect_timeout_ms: 2500, dns_timeout_ms: 700 } });
    expect(config.upstream).toEqual({ connect_timeout_ms: 2500, dns_timeout_ms: 700 });
    expect(config.socks).not.toHaveProperty("connect_timeout_ms");
    expect(config.socks).not.toHaveProperty("dns_timeout_ms");
  });

  test("defaults are 10 s to connect and 5 s for DNS", () => {
    expect(parseConfig({}).upstream).toEqual({ connect_timeout_ms: 10_000, dns_timeout_ms: 5_000 });
  });

  test("each timeout has its range, reported at its path", () => {
    expect(problems({ upstream: { connect_timeout_ms: 0, dns_timeout_ms: 86_400_001 } })).toEqual([
      "upstream.connect_timeout_ms: expected milliseconds between 1 and 86400000, got 0",
      "upstream.dns_timeout_ms: expected milliseconds between 1 and 86400000, got 86400001",
    ]);
    expect(problems({ upstream: { connect_timeout: 5 } })).toEqual([
      'upstream.connect_timeout: unknown option (did you mean "connect_timeout_ms"?)',
    ]);
  });
});

describe("the deprecated socks.* keys", () => {
  test("the list of moved options is exactly the two timeouts", () => {
    expect(RENAMED_OPTIONS).toEqual([
      { key: "connect_timeout_ms", from: "socks", to: "upstream" },
      { key: "dns_timeout_ms", from: "socks", to: "upstream" },
    ]);
  });

  test("still work: their values land in [upstream]", () => {
    const config = parseConfig({ socks: { connect_timeout_ms: 1234, dns_timeout_ms: 567 } });
    expect(config.upstream).toEqual({ connect_timeout_ms: 1234, dns_timeout_ms: 567 });
    expect(config.socks).not.toHaveProperty("connect_timeout_ms");
    // One old, one new: each is taken from where it was given.
    expect(
      parseConfig({ socks: { dns_timeout_ms: 567 }, upstream: { connect_timeout_ms: 1234 } })
        .upstream,
    ).toEqual({ connect_timeout_ms: 1234, dns_timeout_ms: 567 });
  });

  test("each gives a start-up warning naming the new key", async () => {
    const result = await resolveFile("[socks]\nconnect_timeout_ms = 1234\ndns_timeout_ms = 567\n");
    if (result.kind !== "config") throw new Error(JSON.stringify(result));
    expect(result.config.upstream).toEqual({ connect_timeout_ms: 1234, dns_timeout_ms: 567 });
    expect(result.warnings).toEqual([
      "socks.connect_timeout_ms is deprecated: write it as connect_timeout_ms under [upstream] (upstream.connect_timeout_ms); its value is used there until then",
      "socks.dns_timeout_ms is deprecated: write it as dns_timeout_ms under [upstream] (upstream.dns_timeout_ms); its value is used there until then",
    ]);
    const current = await resolveFile("[upstream]\nconnect_timeout_ms = 1234\n");
    expect(current.kind === "config" && current.warnings).toEqual([]);
  });

  test("giving both the old and the new key is a config error on the old one", async () => {
    const result = await resolveFile(
      "[socks]\nconnect_timeout_ms = 1234\n[upstream]\nconnect_timeout_ms = 2000\n",
    );
    expect(result).toEqual({
      kind: "error",
      problems: [
        "socks.connect_timeout_ms: expected nothing here when upstream.connect_timeout_ms is set (this is its deprecated old name: delete it), got 1234",
      ],
    });
  });

  test("a bad value under the old key is reported where it was written", () => {
    expect(problems({ socks: { connect_timeout_ms: -1 } })).toEqual([
      "socks.connect_timeout_ms: expected milliseconds between 1 and 86400000, got -1",
    ]);
  });
});

describe("at start-up", () => {
  const directory = mkdtempSync(join(tmpdir(), "sockpool-upstream-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  test("the deprecation warning is logged before ready; both keys exit 2", async () => {
    const old = join(directory, "old.toml");
    writeFileSync(old, '[socks]\nlisten = "127.0.0.1:0"\ndns_timeout_ms = 3000\n');
    const proxy = Bun.spawn(
      [
        "bun",
        MAIN.pathname,
        "--config",
        old,
        "--workers",
        "1",
        "--admin",
        "127.0.0.1:0",
        "--log-format",
        "json",
      ],
      { stdout: "ignore", stderr: "pipe" },
    );
    try {
      const reader = proxy.stderr.pipeThrough(new TextDecoderStream()).getReader();
      let text = "";
      while (!text.includes('"msg":"ready"')) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`proxy exited before ready: ${text}`);
        text += value;
      }
      const lines = text
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line) as { level: string; msg: string });
      expect(lines.filter((line) => line.level === "warn").map((line) => line.msg)).toContain(
        "socks.dns_timeout_ms is deprecated: write it as dns_timeout_ms under [upstream] (upstream.dns_timeout_ms); its value is used there until then",
      );
    } finally {
      proxy.kill("SIGTERM");
      await proxy.exited;
    }

    const both = join(directory, "both.toml");
    writeFileSync(both, "[socks]\ndns_timeout_ms = 3000\n[upstream]\ndns_timeout_ms = 3000\n");
    const { code, stderr } = await runBun(MAIN, ["--config", both]);
    expect(code).toBe(2);
    expect(stderr).toContain("socks.dns_timeout_ms: expected nothing here");
  }, 30_000);
});
