import { describe, expect, test } from "bun:test";
import {
  CONFIG_EXIT_CODE,
  ConfigError,
  formatIssue,
  formatPath,
  isSecretPath,
  showValue,
} from "../../src/config/errors.ts";
import { validateConfig } from "../../src/config/schema.ts";

const SECRET = "hunter2-do-not-print";

function problems(input: unknown): string[] {
  const result = validateConfig(input);
  return result.success ? [] : result.issues.map((issue) => formatIssue(issue));
}

describe("password redaction", () => {
  test("a bad password is named but never shown", () => {
    expect(
      problems({ socks: { auth: "password", users: [{ username: "alice", password: "" }] } }),
    ).toEqual(["socks.users[0].password: expected 1..255 bytes, got <redacted>"]);
  });

  test("an oversize password is withheld too", () => {
    const password = SECRET.repeat(20); // 400 bytes
    const lines = problems({
      socks: { auth: "password", users: [{ username: "alice", password }] },
    });
    expect(lines).toEqual(["socks.users[0].password: expected 1..255 bytes, got <redacted>"]);
  });

  test("a malformed user list that may hold a password is withheld", () => {
    const lines = problems({
      socks: { auth: "password", users: [`alice:${SECRET}`, { username: "bob", pass: SECRET }] },
    });
    expect(lines).toEqual([
      "socks.users[0]: expected a table, got <redacted>",
      // (No "password missing" on top: the misspelt key is the problem to fix.)
      "socks.users[1].pass: unknown option (known options: username, password, password_hash)",
    ]);
    expect(lines.join("\n")).not.toContain(SECRET);
    expect(problems({ socks: { users: `alice:${SECRET}` } })).toEqual([
      "socks.users: expected an array of { username, password } tables, got <redacted>",
    ]);
  });

  test("usernames and an empty user list stay visible: they help and hide nothing", () => {
    expect(isSecretPath(["socks", "users", 0, "username"], "alice")).toBe(false);
    expect(isSecretPath(["socks", "users"], [])).toBe(false);
    expect(isSecretPath(["socks", "users"], [{ username: "a", password: "b" }])).toBe(true);
    expect(isSecretPath(["anything", "password"], "")).toBe(true);
  });
});

describe("formatting", () => {
  test("paths use dots for keys and brackets for indices", () => {
    expect(formatPath(["socks", "users", 0, "password"])).toBe("socks.users[0].password");
    expect(formatPath(["forward", 12])).toBe("forward[12]");
    expect(formatPath([])).toBe("");
  });

  test("values are shown as a reader would type them", () => {
    expect(showValue("x")).toBe('"x"');
    expect(showValue(1000)).toBe("1000");
    expect(showValue(false)).toBe("false");
    expect(showValue([1, "a"])).toBe('[1,"a"]');
    expect(showValue({ a: 1 })).toBe('{"a":1}');
    expect(showValue(undefined)).toBe("nothing");
    expect(showValue("x".repeat(200))).toHaveLength(80);
  });

  test("a label replaces the path but redaction still follows the real path", () => {
    const result = validateConfig({
      socks: { auth: "password", users: [{ username: "alice", password: "" }] },
    });
    expect(result.success).toBe(false);
    const issue = result.issues![0]!;
    expect(formatIssue(issue, "--socks-user PASS")).toBe(
      "--socks-user PASS: expected 1..255 bytes, got <redacted>",
    );
  });

  test("a value that is not a table at all is reported against the whole config", () => {
    expect(problems(42)).toEqual(["config: expected a table, got 42"]);
  });
});

describe("ConfigError", () => {
  test("carries the stable code, the problems, and a message listing them", () => {
    const error = new ConfigError(["a: expected x, got y", "b: unknown option (z)"]);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.name).toBe("ConfigError");
    expect(error.problems).toEqual(["a: expected x, got y", "b: unknown option (z)"]);
    expect(error.message).toBe(
      "invalid configuration:\n  a: expected x, got y\n  b: unknown option (z)",
    );
  });

  test("the exit code for configuration problems is 2", () => {
    expect(CONFIG_EXIT_CODE).toBe(2);
  });
});
