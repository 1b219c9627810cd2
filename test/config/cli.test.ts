import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;
import { formatIssue } from "../../src/config/errors.ts";
import { FLAGS } from "../../src/config/flags.ts";
import { EXAMPLE_ARGV, EXAMPLE_TOML, helpText } from "../../src/config/help.ts";
import { type ResolveResult, readConfigFile, resolveConfig } from "../../src/config/load.ts";
import {
  CONFIG_SECTIONS,
  type Config,
  DEFAULT_CONFIG,
  validateConfig,
} from "../../src/config/schema.ts";

/** An in-memory file system: path → contents. */
function files(contents: Record<string, string>) {
  return async (path: string) => contents[path];
}

function resolve(
  argv: readonly string[],
  contents: Record<string, string> = {},
  env: Record<string, string> = {},
): Promise<ResolveResult> {
  return resolveConfig({ argv, readFile: files(contents), env });
}

async function configOf(argv: readonly string[], contents: Record<string, string> = {}) {
  const result = await resolve(argv, contents);
  if (result.kind !== "config") throw new Error(`expected a config, got ${JSON.stringify(result)}`);
  return result.config;
}

async function problemsOf(argv: readonly string[], contents: Record<string, string> = {}) {
  const result = await resolve(argv, contents);
  if (result.kind !== "error") throw new Error(`expected problems, got ${JSON.stringify(result)}`);
  return result.problems;
}

describe("no flags", () => {
  test("no argv and no file give the defaults", async () => {
    expect(await configOf([])).toEqual(DEFAULT_CONFIG);
  });
});

describe("each flag sets its option", () => {
  const cases: [string[], (config: Config) => unknown, unknown][] = [
    [["--socks", "[::1]:0"], (c) => [c.socks.listen, c.socks.enabled], ["[::1]:0", true]],
    [["--no-socks", "--forward", "127.0.0.1:0=example.com:80"], (c) => c.socks.enabled, false],
    [
      ["--socks-user", "alice:pa:ss"],
      (c) => [c.socks.auth, c.socks.users],
      ["password", [{ username: "alice", password: "pa:ss" }]],
    ],
    [
      ["--forward", "127.0.0.1:8080=10.0.0.5:80", "--forward", "[::1]:0=[::1]:80"],
      (c) => c.forward,
      [
        { listen: "127.0.0.1:8080", target: "10.0.0.5:80" },
        { listen: "[::1]:0", target: "[::1]:80" },
      ],
    ],
    [
      ["--http", "127.0.0.1:3128", "--http", "[::1]:0"],
      (c) => c.http,
      [
        { listen: "127.0.0.1:3128", auth: "none" },
        { listen: "[::1]:0", auth: "none" },
      ],
    ],
    [["--socks-protocol", "auto"], (c) => c.socks.protocol, "auto"],
    [["--udp"], (c) => c.udp.enabled, true],
    [["--udp-announce-address", "203.0.113.7"], (c) => c.udp.announce_address, "203.0.113.7"],
    [["--workers", "4"], (c) => c.server.workers, 4],
    [["--workers=0"], (c) => c.server.workers, 0],
    [["--share-port"], (c) => c.server.share_port, true],
    [["--proxy-protocol", "--trusted-proxy", "10.0.0.0/8"], (c) => c.socks.proxy_protocol, true],
    [
      ["--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "fd00::/8"],
      (c) => c.server.trusted_proxies,
      ["10.0.0.0/8", "fd00::/8"],
    ],
    [["--allow-open-proxy"], (c) => c.socks.allow_open_proxy, true],
    [["--pool-strategy", "mutex"], (c) => c.pool.strategy, "mutex"],
    [["--pool-slots", "65536"], (c) => c.pool.slots, 65_536],
    [["--slot-bytes", "4096"], (c) => c.pool.slot_bytes, 4096],
    [["--pool-checked"], (c) => c.pool.checked, true],
    [["--upstream-pool"], (c) => c.server.pool.enabled, true],
    [["--upstream-pool-per-dest", "2"], (c) => c.server.pool.max_idle_per_dest, 2],
    [["--upstream-pool-total", "50"], (c) => c.server.pool.max_total_idle, 50],
    [["--upstream-pool-idle-secs", "30"], (c) => c.server.pool.idle_timeout_secs, 30],
    [["--upstream-pool-connect-ms", "750"], (c) => c.server.pool.connect_timeout_ms, 750],
    [["--admin", "off"], (c) => c.admin.listen, "off"],
    [["--admin", "[::1]:0"], (c) => c.admin.listen, "[::1]:0"],
    [["--log-level", "debug"], (c) => c.log.level, "debug"],
    [["--log-format=json"], (c) => c.log.format, "json"],
  ];
  test.each(cases)("%p", async (argv, pick, expected) => {
    expect(pick(await configOf(argv))).toEqual(expected);
  });

  test("every flag in the table that sets a config value is covered above", () => {
    const covered = new Set(cases.flatMap(([argv]) => argv.map((arg) => arg.split("=")[0])));
    const settable = FLAGS.filter((flag) => flag.apply !== undefined).map(
      (flag) => `--${flag.name}`,
    );
    expect(settable.filter((flag) => !covered.has(flag))).toEqual([]);
  });
});

describe("file and flags", () => {
  const FILE = `
[server]
workers = 2
[pool]
slots = 8192
strategy = "mutex"
[socks]
auth = "password"
[[socks.users]]
username = "alice"
password = "file-secret"
[[forward]]
listen = "127.0.0.1:9000"
target = "db:5432"
`;

  test("flags override the file, which overrides the defaults", async () => {
    const config = await configOf(["--config", "sp.toml", "--pool-slots", "1024"], {
      "sp.toml": FILE,
    });
    expect(config.pool.slots).toBe(1024); // flag
    expect(config.pool.strategy).toBe("mutex"); // file
    expect(config.server.workers).toBe(2); // file
    expect(config.pool.slot_bytes).toBe(DEFAULT_CONFIG.pool.slot_bytes); // default
  });

  test("--forward and --socks-user append to the file's lists, file entries first", async () => {
    const config = await configOf(
      ["--config", "sp.toml", "--forward", "127.0.0.1:9001=cache:6379", "--socks-user", "bob:pw"],
      { "sp.toml": FILE },
    );
    expect(config.forward).toEqual([
      { listen: "127.0.0.1:9000", target: "db:5432" },
      { listen: "127.0.0.1:9001", target: "cache:6379" },
    ]);
    expect(config.socks.users.map((user) => user.username)).toEqual(["alice", "bob"]);
  });

  test("--socks turns SOCKS5 back on when the file turned it off", async () => {
    const file = `[socks]\nenabled = false\n[[forward]]\nlisten = "127.0.0.1:0"\ntarget = "a:1"\n`;
    const config = await configOf(["--config", "f.toml", "--socks", "127.0.0.1:0"], {
      "f.toml": file,
    });
    expect(config.socks.enabled).toBe(true);
  });

  test("$SOCKPOOL_CONFIG names the file when --config is absent; --config wins over it", async () => {
    const contents = {
      "env.toml": "[server]\nworkers = 3\n",
      "flag.toml": "[server]\nworkers = 5\n",
    };
    const fromEnv = await resolve([], contents, { SOCKPOOL_CONFIG: "env.toml" });
    const fromFlag = await resolve(["--config", "flag.toml"], contents, {
      SOCKPOOL_CONFIG: "env.toml",
    });
    expect(fromEnv.kind === "config" && fromEnv.config.server.workers).toBe(3);
    expect(fromFlag.kind === "config" && fromFlag.config.server.workers).toBe(5);
  });

  test("problems in the file and on the command line are listed together", async () => {
    const file = '[pool]\nslots = 1000\nslotz = 1\n[log]\nformat = "xml"\n';
    expect(
      await problemsOf(["--config", "bad.toml", "--workers", "999", "--slot-bytes", "1000"], {
        "bad.toml": file,
      }),
    ).toEqual([
      "--workers: expected 0 (one per CPU) or an integer between 1 and 256, got 999",
      "pool.slots: expected a power of two between 16 and 1048576, got 1000",
      "--slot-bytes: expected a multiple of 1024 between 1024 and 1048576, got 1000",
      'pool.slotz: unknown option (did you mean "slots"?)',
      'log.format: expected one of "text", "json", got "xml"',
    ]);
  });
});

describe("config file problems", () => {
  test("a TOML syntax error is one line naming the file, line and column", async () => {
    expect(await problemsOf(["--config", "x.toml"], { "x.toml": "[pool\nslots = 16\n" })).toEqual([
      "config file x.toml, line 1, column 6: invalid TOML: illegal character in key",
    ]);
    const twice = "[server]\nworkers = 1\n\nworkers = 2\n";
    expect(await problemsOf(["--config", "x.toml"], { "x.toml": twice })).toEqual([
      "config file x.toml, line 4, column 1: invalid TOML: trying to redefine an already defined table or value",
    ]);
  });

  test("a directory given as the config file is said to be one", async () => {
    const result = await resolveConfig({ argv: ["--config", "/tmp"], readFile: readConfigFile });
    expect(result.kind === "error" && result.problems).toEqual([
      "config file /tmp: cannot read: is a directory, not a TOML file",
    ]);
  });

  test("a missing file is reported, and flag problems are still listed", async () => {
    expect(await problemsOf(["--config", "nope.toml", "--pool-slots", "100"])).toEqual([
      "config file nope.toml: not found",
      "--pool-slots: expected a power of two between 16 and 1048576, got 100",
    ]);
  });

  test("without the file, checks that would lean on defaults standing in for it stay quiet", async () => {
    // --no-socks alone would mean "nothing listens", but the missing file may have had forwards.
    expect(await problemsOf(["--config", "nope.toml", "--no-socks"])).toEqual([
      "config file nope.toml: not found",
    ]);
  });

  test("a read failure other than not-found is reported with its reason", async () => {
    const result = await resolveConfig({
      argv: ["--config", "/etc/shadow"],
      readFile: async () => {
        throw new Error("EACCES: permission denied");
      },
    });
    expect(result).toEqual({
      kind: "error",
      problems: ["config file /etc/shadow: cannot read: EACCES: permission denied"],
    });
  });

  test("an unknown key in the file is named with its dotted path", async () => {
    expect(
      await problemsOf(["--config", "c.toml"], { "c.toml": "[relay]\nidle_timeout = 5\n" }),
    ).toEqual(['relay.idle_timeout: unknown option (did you mean "idle_timeout_ms"?)']);
  });
});

describe("flag problems", () => {
  test.each(["12abc", "0x10", "1e3", "1.5", "", " 4"])(
    "--workers %p is not an integer",
    async (value) => {
      expect(await problemsOf([`--workers=${value}`])).toEqual([
        `--workers: expected an integer, got ${JSON.stringify(value)}`,
      ]);
    },
  );

  test("a bad --pool-slots is named by the flag, and its dependants stay quiet", async () => {
    expect(await problemsOf(["--pool-slots", "1000"])).toEqual([
      "--pool-slots: expected a power of two between 16 and 1048576, got 1000",
    ]);
    expect(await problemsOf(["--pool-slots", "12abc"])).toEqual([
      '--pool-slots: expected an integer, got "12abc"',
    ]);
  });

  test("an enum flag lists the choices", async () => {
    expect(await problemsOf(["--pool-strategy", "fast", "--log-format", "xml"])).toEqual([
      '--pool-strategy: expected one of "queue", "queue-ts", "mutex", "spinlock", "local", "alloc", got "fast"',
      '--log-format: expected one of "text", "json", got "xml"',
    ]);
  });

  test("unknown flags and stray arguments point to --help, all at once", async () => {
    expect(await problemsOf(["--bogus", "-x", "--pool-slot=16", "stray"])).toEqual([
      "--bogus: unknown option (see sockpool --help)",
      "-x: unknown option (see sockpool --help)",
      "--pool-slot: unknown option (see sockpool --help)",
      '"stray": unexpected argument (sockpool takes only options; see sockpool --help)',
    ]);
  });

  test("a missing value, a value on a switch, and a flag taken as a value", async () => {
    expect(await problemsOf(["--pool-checked=yes", "--log-level"])).toEqual([
      '--pool-checked: takes no value, got "yes"',
      "--log-level: expected a value (LEVEL), got nothing",
    ]);
    expect(await problemsOf(["--workers", "--pool-slots", "64"])).toEqual([
      `--workers: expected a value (N), got option "--pool-slots" (write --workers=VALUE for a value starting with '-')`,
      '"64": unexpected argument (sockpool takes only options; see sockpool --help)',
    ]);
  });

  test("--workers=-1 reaches the range check", async () => {
    expect(await problemsOf(["--workers=-1"])).toEqual([
      "--workers: expected 0 (one per CPU) or an integer between 1 and 256, got -1",
    ]);
  });

  test("--socks and --no-socks together are refused", async () => {
    expect(await problemsOf(["--socks", "127.0.0.1:0", "--no-socks"])).toEqual([
      "--socks, --no-socks: expected one or the other, got both",
    ]);
  });

  test("--no-socks without any --forward leaves nothing to listen", async () => {
    expect(await problemsOf(["--no-socks"])).toEqual([
      "forward: expected at least one [[forward]] or [[http]] entry when socks.enabled = false (nothing would listen), got []",
    ]);
  });
});

describe("--forward", () => {
  test("a value without '=' is refused", async () => {
    expect(await problemsOf(["--forward", "127.0.0.1:8080"])).toEqual([
      '--forward: expected LISTEN_HOST:PORT=TARGET_HOST:PORT, got "127.0.0.1:8080"',
    ]);
  });

  test("a bad port names the half it is in", async () => {
    expect(await problemsOf(["--forward", "127.0.0.1:8080=10.0.0.5:70000"])).toEqual([
      '--forward TARGET: expected HOST:PORT to connect to, port 1..65535 (IPv6 as "[::1]:80"), got "10.0.0.5:70000"',
    ]);
    expect(await problemsOf(["--forward", "127.0.0.1:99999=10.0.0.5:80"])).toEqual([
      '--forward LISTEN: expected HOST:PORT to listen on, port 0..65535 (IPv6 as "[::1]:8080"), got "127.0.0.1:99999"',
    ]);
  });

  test("bracketed IPv6 works on both sides", async () => {
    expect((await configOf(["--forward", "[::1]:8080=[::1]:80"])).forward).toEqual([
      { listen: "[::1]:8080", target: "[::1]:80" },
    ]);
  });

  test("a --forward on the SOCKS5 address is refused", async () => {
    expect(await problemsOf(["--forward", "127.0.0.1:1080=a:1"])).toEqual([
      '--forward LISTEN: expected an address not already used by socks.listen, got "127.0.0.1:1080"',
    ]);
  });
});

describe("--socks-user", () => {
  test("without a colon it is refused and the value is never echoed", async () => {
    const problems = await problemsOf(["--socks-user", "justapassword"]);
    expect(problems).toEqual(["--socks-user: expected USER:PASS, got <redacted> (no ':' in it)"]);
    expect(problems.join("\n")).not.toContain("justapassword");
  });

  test("an empty password is named as PASS and withheld", async () => {
    expect(await problemsOf(["--socks-user", "alice:"])).toEqual([
      "--socks-user PASS: expected 1..255 bytes, got <redacted>",
    ]);
  });

  test("an empty username is shown: it is not a secret", async () => {
    expect(await problemsOf(["--socks-user", ":secret"])).toEqual([
      '--socks-user USER: expected 1..255 bytes, got ""',
    ]);
  });
});

describe("--help and --version", () => {
  test("--help and -h return the help text", async () => {
    expect(await resolve(["--help"])).toEqual({ kind: "help", text: helpText() });
    expect(await resolve(["-h"])).toEqual({ kind: "help", text: helpText() });
  });

  test("--help wins over other problems and the file is not read", async () => {
    const result = await resolveConfig({
      argv: ["--bogus", "--config", "x.toml", "--help"],
      readFile: async () => {
        throw new Error("must not be read");
      },
    });
    expect(result.kind).toBe("help");
  });

  test("--version and -V", async () => {
    expect(await resolve(["--version"])).toEqual({ kind: "version" });
    expect(await resolve(["-V"])).toEqual({ kind: "version" });
  });

  test("the help lists every flag in the table, with its placeholder", () => {
    const help = helpText();
    for (const flag of FLAGS) {
      const usage = flag.value === undefined ? `--${flag.name}` : `--${flag.name} ${flag.value}`;
      expect(help).toContain(usage);
    }
  });

  test("the help lists the flags the CLI promises", () => {
    const help = helpText();
    for (const flag of [
      "--config",
      "--socks",
      "--forward",
      "--workers",
      "--pool-strategy",
      "--pool-slots",
      "--slot-bytes",
      "--log-level",
      "--log-format",
      "--help",
    ]) {
      expect(help).toMatch(new RegExp(`^ {2}(-\\w, | {4})${flag}\\b`, "m"));
    }
    expect(help).toContain("Usage: sockpool [options]");
  });

  test("defaults in the help come from DEFAULT_CONFIG", () => {
    const help = helpText();
    expect(help).toContain(`(default: ${DEFAULT_CONFIG.pool.slots})`);
    expect(help).toContain(`(default: ${DEFAULT_CONFIG.socks.listen})`);
    expect(help).toContain(`slot_bytes = ${DEFAULT_CONFIG.pool.slot_bytes}`);
    for (const section of [
      "[server]",
      "[socks]",
      "[[socks.users]]",
      "[upstream]",
      "[[forward]]",
      "[relay]",
      "[pool]",
      "[log]",
    ]) {
      expect(help).toContain(section);
    }
  });

  test("the help is generated: every flag and every config key of the tables appears", () => {
    const help = helpText();
    for (const flag of FLAGS) expect(help).toContain(`--${flag.name}`);
    for (const flag of FLAGS) expect(help).toContain(flag.description.split(" ")[0]!);
    for (const section of CONFIG_SECTIONS) {
      const header = section.array ? `[[${section.name}]]` : `[${section.name}]`;
      const line = help.split("\n").find((text) => text.startsWith(`  ${header} `));
      expect(line).toBeDefined();
      const block = help.slice(help.indexOf(line!)).split(/\n {2}\[/)[0]!;
      for (const key of section.keys) expect(block).toContain(key);
    }
  });

  test("the deprecated socks.* timeouts are not offered under [socks]", () => {
    const socksLine = helpText()
      .split("\n")
      .find((line) => line.startsWith("  [socks] "));
    expect(socksLine).not.toContain("connect_timeout_ms");
    expect(helpText()).toContain("connect_timeout_ms = 10000");
  });

  test("the README's Usage table and Config file section list every flag and key", async () => {
    const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
    const usage = readme.slice(readme.indexOf("## Usage"), readme.indexOf("### Config file"));
    const file = readme.slice(readme.indexOf("### Config file"), readme.indexOf("### Logs"));
    for (const flag of FLAGS) expect(usage).toContain(`--${flag.name}`);
    for (const section of CONFIG_SECTIONS) {
      expect(file).toContain(section.array ? `[[${section.name}]]` : `[${section.name}]`);
      for (const key of section.keys) expect(file).toContain(key);
    }
  });

  test("every TOML example in the README is a valid configuration", async () => {
    const readme = await Bun.file(new URL("../../README.md", import.meta.url)).text();
    const blocks = [...readme.matchAll(/```toml\n([\s\S]*?)```/g)].map((match) => match[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    for (const block of blocks) {
      const result = validateConfig(parseToml(block));
      expect(result.success ? [] : result.issues.map((issue) => formatIssue(issue))).toEqual([]);
    }
  });

  test("the help names every SOCKPOOL_ variable the source reads, the exit codes and signals", async () => {
    const read = new Set<string>();
    for await (const file of new Bun.Glob("src/**/*.ts").scan({ cwd: REPO_ROOT })) {
      const source = await Bun.file(join(REPO_ROOT, file)).text();
      for (const match of source.matchAll(/\bSOCKPOOL_[A-Z_]+\b/g)) read.add(match[0]);
    }
    expect(read.size).toBeGreaterThan(0);
    const help = helpText();
    for (const name of read) expect(help).toContain(`  ${name}`);
    expect(help).toContain("Exit codes: 0");
    for (const signal of ["SIGTERM, SIGINT", "SIGHUP", "SIGUSR1", "SIGUSR2"])
      expect(help).toContain(`  ${signal}  `);
    expect(help).toContain("a second one during the drain");
  });

  test("no help line is wider than 100 columns", () => {
    const wide = helpText()
      .split("\n")
      .filter((line) => line.length > 100);
    expect(wide).toEqual([]);
  });

  test("the help's examples are valid", async () => {
    const fromArgv = await resolve(EXAMPLE_ARGV);
    expect(fromArgv.kind).toBe("config");
    const fromFile = validateConfig(parseToml(EXAMPLE_TOML));
    expect(fromFile.issues).toBeUndefined();
    expect(helpText()).toContain(`sockpool ${EXAMPLE_ARGV.join(" ")}`);
  });
});

describe("readConfigFile", () => {
  const directory = mkdtempSync(join(tmpdir(), "sockpool-config-"));
  afterAll(() => rmSync(directory, { recursive: true, force: true }));

  test("returns the text of a file and undefined for a missing one", async () => {
    const path = join(directory, "sockpool.toml");
    writeFileSync(path, "[pool]\nslots = 64\n");
    expect(await readConfigFile(path)).toBe("[pool]\nslots = 64\n");
    expect(await readConfigFile(join(directory, "missing.toml"))).toBeUndefined();
  });
});

describe("secrets: hashed passwords, users_file, the environment", () => {
  // Shapes only: these never reach Bun.password here.
  const ARGON = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
  const BCRYPT = `$2b$04$${"a".repeat(53)}`;

  test("users_file: one username:hash per line, comments and blank lines skipped", async () => {
    const file = `# staff\nann:${ARGON}\n\nbob:${BCRYPT}\n`;
    const config = await configOf(["--config", "c.toml"], {
      "c.toml": '[socks]\nusers_file = "users.txt"\n',
      "users.txt": file,
    });
    expect(config.socks.auth).toBe("password");
    expect(config.socks.users).toEqual([
      { username: "ann", password_hash: ARGON },
      { username: "bob", password_hash: BCRYPT },
    ]);
  });

  test("a bad users_file line is named by number, never quoted (it may be a pasted password)", async () => {
    const problems = await problemsOf(["--config", "c.toml"], {
      "c.toml": '[socks]\nusers_file = "users.txt"\n',
      "users.txt": `ann:${ARGON}\ncarol:Plaintext-Secret\nno-colon-here\n`,
    });
    expect(problems).toEqual([
      "socks.users_file users.txt, line 2: expected username:hash with a hash from sockpool --hash-password",
      "socks.users_file users.txt, line 3: expected username:hash with a hash from sockpool --hash-password",
    ]);
    expect(problems.join("\n")).not.toContain("Plaintext-Secret");
  });

  test("a missing users_file is a problem naming it", async () => {
    expect(
      await problemsOf(["--config", "c.toml"], { "c.toml": '[socks]\nusers_file = "gone"\n' }),
    ).toEqual(["socks.users_file gone: not found"]);
  });

  test("a user in a users_file and inline under the same name is a problem", async () => {
    const problems = await problemsOf(["--config", "c.toml", "--socks-user", "ann:x"], {
      "c.toml": '[socks]\nusers_file = "u"\n',
      u: `ann:${ARGON}\n`,
    });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("a username not already used by socks.users[0]");
  });

  test("SOCKPOOL_SOCKS_USER adds a user like --socks-user, out of sight of ps", async () => {
    const result = await resolve([], {}, { SOCKPOOL_SOCKS_USER: "dan:from-env" });
    expect(result.kind === "config" && result.config.socks.users).toEqual([
      { username: "dan", password: "from-env" },
    ]);
    const bad = await resolve([], {}, { SOCKPOOL_SOCKS_USER: "no-colon-secret" });
    expect(bad.kind === "error" && bad.problems).toEqual([
      "$SOCKPOOL_SOCKS_USER: expected USER:PASS, got <redacted> (no ':' in it)",
    ]);
  });

  test("password_hash inline, checked for shape; exactly one of password and password_hash", async () => {
    const toml = (user: string) => ({
      "c.toml": `[socks]\nauth = "password"\n[[socks.users]]\n${user}\n`,
    });
    expect(
      (await configOf(["--config", "c.toml"], toml(`username = "e"\npassword_hash = "${BCRYPT}"`)))
        .socks.users,
    ).toEqual([{ username: "e", password_hash: BCRYPT }]);
    expect(
      await problemsOf(["--config", "c.toml"], toml('username = "e"\npassword_hash = "md5:abc"')),
    ).toEqual([
      'socks.users[0].password_hash: expected an argon2 ("$argon2id$…") or bcrypt ("$2b$…") hash, as sockpool --hash-password prints, got <redacted>',
    ]);
    expect(await problemsOf(["--config", "c.toml"], toml('username = "e"'))).toEqual([
      "socks.users[0]: expected exactly one of password and password_hash (it has neither), got <redacted>",
    ]);
    expect(
      await problemsOf(
        ["--config", "c.toml"],
        toml(`username = "e"\npassword = "p"\npassword_hash = "${BCRYPT}"`),
      ),
    ).toEqual([
      "socks.users[0]: expected exactly one of password and password_hash (it has both), got <redacted>",
    ]);
  });
});
