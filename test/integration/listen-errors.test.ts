// A listen address the program cannot use stops the start with exit 1 and one line naming the
// listener, the address, the port and the system's reason in words: in use, not an address of this
// machine, a name that does not resolve; the same for the admin API, and for a listener a reload
// adds (then the reload is rejected and the old config serves on).
//
// 192.0.2.1 (TEST-NET-1, RFC 5737) is on no interface here; `.invalid` names never resolve (RFC
// 6761), and the resolver answers that at once, without a network.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanup } from "../support/cleanup.ts";
import { runCli, spawnProxy } from "../support/proxy-process.ts";
import { echoThrough } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

const NOT_HERE = "192.0.2.1";
const NO_NAME = "no-such-host.invalid";

function adminConfig(): string {
  const dir = mkdtempSync(join(tmpdir(), "sockpool-listen-"));
  const path = join(dir, "admin.toml");
  // A token lets the admin API listen on a non-loopback address, so the bind itself is tried.
  writeFileSync(path, '[admin]\ntoken = "0123456789abcdef0123"\n');
  return path;
}

describe("listen errors", () => {
  test.each([
    [
      "socks, not an address of this machine",
      ["--socks", `${NOT_HERE}:1080`, "--allow-open-proxy"],
      `socks listen ${NOT_HERE}:1080: EADDRNOTAVAIL (not an address of this machine)`,
    ],
    [
      "socks with --share-port, not an address of this machine",
      ["--socks", `${NOT_HERE}:1080`, "--allow-open-proxy", "--share-port"],
      `socks listen ${NOT_HERE}:1080: EADDRNOTAVAIL (not an address of this machine)`,
    ],
    [
      "socks, a name that does not resolve",
      ["--socks", `${NO_NAME}:1080`, "--allow-open-proxy"],
      `socks listen ${NO_NAME}:1080: ENOTFOUND (the name does not resolve)`,
    ],
    [
      "forward, not an address of this machine",
      ["--no-socks", "--forward", `${NOT_HERE}:8080=127.0.0.1:80`],
      `forward listen ${NOT_HERE}:8080: EADDRNOTAVAIL (not an address of this machine)`,
    ],
  ])("%s: exit 1, named", async (_name, args, expected) => {
    const result = await runCli([...args, "--admin", "off"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("cannot start");
    expect(result.stderr).toContain(expected);
  });

  test("the admin API: not an address of this machine, a name that does not resolve, in use", async () => {
    const config = adminConfig();
    const notHere = await runCli(["--config", config, "--admin", `${NOT_HERE}:9090`]);
    expect(notHere.code).toBe(1);
    expect(notHere.stderr).toContain(
      `admin API cannot listen on ${NOT_HERE}:9090: EADDRNOTAVAIL (not an address of this machine)`,
    );
    const noName = await runCli(["--config", config, "--admin", `${NO_NAME}:9090`]);
    expect(noName.code).toBe(1);
    expect(noName.stderr).toContain(
      `admin listen ${NO_NAME}:9090: ENOTFOUND (the name does not resolve)`,
    );
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const inUse = await runCli(["--admin", `127.0.0.1:${taken.port}`]);
      expect(inUse.code).toBe(1);
      expect(inUse.stderr).toContain(
        `admin API cannot listen on 127.0.0.1:${taken.port}: EADDRINUSE (already in use)`,
      );
    } finally {
      taken.stop(true);
    }
  });

  test("a listener a reload adds on a port in use: the reload is rejected, naming it", async () => {
    const echo = startEcho();
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const dir = mkdtempSync(join(tmpdir(), "sockpool-listen-"));
    const path = join(dir, "sockpool.toml");
    writeFileSync(path, '[socks]\nlisten = "127.0.0.1:0"\n');
    try {
      const proxy = await spawnProxy(["--config", path, "--workers", "2"]);
      writeFileSync(
        path,
        `[socks]\nlisten = "127.0.0.1:0"\n[[forward]]\nlisten = "127.0.0.1:${taken.port}"\ntarget = "127.0.0.1:${echo.port}"\n`,
      );
      proxy.process.kill("SIGHUP");
      await waitFor(
        () => proxy.logs.some((record) => String(record.msg).startsWith("reload rejected:")),
        "the reload to be rejected",
      );
      const problem = proxy.logs.find((record) => record.msg === "reload rejected");
      expect(String(problem?.problem)).toContain(
        `forward listen 127.0.0.1:${taken.port} is already in use by another process (EADDRINUSE)`,
      );
      expect(await echoThrough(proxy.socksPort, echo.port, "serving")).toBe("serving");
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      taken.stop(true);
      echo.close();
    }
  });
});
