// The soak's fault-injection hook on the real program: with SOCKPOOL_FAULT_INJECTION=1, SIGUSR2
// crashes Worker 0 through the real crash path (logged, restarted, serving again); without it,
// SIGUSR2 is ignored with a log line. Not the soak itself (test/soak/).

import { afterAll, describe, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { spawnProxy } from "../support/proxy-process.ts";
import { echoThrough } from "../support/socks-client.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

const ARGS = ["--socks", "127.0.0.1:0", "--workers", "2", "--pool-checked"];

describe("fault injection (SIGUSR2)", () => {
  test("with SOCKPOOL_FAULT_INJECTION=1: Worker 0 crashes, is restarted, the proxy serves on", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy(ARGS, { env: { SOCKPOOL_FAULT_INJECTION: "1" } });
      expect(
        proxy.logs.some(
          (record) => record.msg === "fault injection enabled: SIGUSR2 crashes worker 0",
        ),
      ).toBe(true);
      proxy.process.kill("SIGUSR2");
      await waitFor(
        () => proxy.logs.some((record) => record.msg === "worker restarted"),
        "the restarted line",
      );
      const crashed = proxy.logs.filter((record) => record.msg === "worker crashed");
      expect(crashed).toHaveLength(1);
      expect(crashed[0]!.worker).toBe(0);
      expect(String(crashed[0]!.error)).toContain("injected crash");
      for (let i = 0; i < 20; i++)
        expect(await echoThrough(proxy.socksPort, echo.port, `m${i}`)).toBe(`m${i}`);
      expect(await proxy.stop("SIGTERM")).toBe(0);
      // Nothing was open at the crash, so nothing is lost: the stopped line says so.
      const stopped = proxy.logs.find((record) => record.msg === "stopped");
      expect(stopped).toMatchObject({ open_connections: 0, pool_slots: 4096, pool_free: 4096 });
    } finally {
      echo.close();
    }
  });

  test("without it: SIGUSR2 is ignored with a log line, and the proxy serves on", async () => {
    const echo = startEcho();
    try {
      const proxy = await spawnProxy(ARGS);
      proxy.process.kill("SIGUSR2");
      await waitFor(
        () =>
          proxy.logs.some((record) => record.msg === "SIGUSR2 ignored (it has no meaning here)"),
        "the SIGUSR2 line",
      );
      expect(proxy.process.exitCode).toBeNull();
      expect(await echoThrough(proxy.socksPort, echo.port, "on")).toBe("on");
      expect(proxy.logs.some((record) => String(record.msg).startsWith("fault injection"))).toBe(
        false,
      );
      expect(await proxy.stop("SIGTERM")).toBe(0);
    } finally {
      echo.close();
    }
  });
});
