// The descriptor-limit warning, and that running out of descriptors never takes the proxy down.

import { expect, test } from "bun:test";
import { fileLimitWarning, openFileLimit } from "../src/limits.ts";

const LIMITS_SAMPLE = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            1024                 524288               files
`;

test("reads the soft open-files limit", async () => {
  expect(await openFileLimit(LIMITS_SAMPLE)).toBe(1024);
  expect(await openFileLimit(LIMITS_SAMPLE.replace("1024  ", "unlimited"))).toBe(
    Number.POSITIVE_INFINITY,
  );
  expect(await openFileLimit("garbage")).toBeNull();
  expect(await openFileLimit()).toBeGreaterThan(0); // this machine's own
});

test("warns, with the fix, when connections_max cannot fit the limit", () => {
  expect(fileLimitWarning(10_000, 1024)).toBe(
    "server.connections_max = 10000 needs about 20064 file descriptors, but the limit is 1024; " +
      "raise it (ulimit -n 20064, or LimitNOFILE=20064 under systemd) or lower connections_max",
  );
  expect(fileLimitWarning(100, 1024)).toBeNull();
  expect(fileLimitWarning(100, null)).toBeNull();
});

test("a proxy out of file descriptors keeps running and serves again once they free up", async () => {
  const proxy = Bun.spawn(
    [
      "bash",
      "-c",
      "ulimit -n 64 && exec bun src/main.ts --socks 127.0.0.1:0 --workers 1 --log-format json",
    ],
    { cwd: new URL("..", import.meta.url).pathname, stdout: "ignore", stderr: "pipe" },
  );
  try {
    const lines: Record<string, unknown>[] = [];
    const reader = proxy.stderr.pipeThrough(new TextDecoderStream()).getReader();
    let buffered = "";
    while (!lines.some((line) => line.msg === "ready")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`proxy exited before ready: ${JSON.stringify(lines)}`);
      buffered += value;
      const parts = buffered.split("\n");
      buffered = parts.pop()!;
      for (const part of parts) if (part.trim()) lines.push(JSON.parse(part));
    }
    expect(lines.find((line) => line.level === "warn")?.msg).toContain(
      "needs about 20064 file descriptors",
    );
    const address = String(lines.find((line) => line.msg === "listening")?.address);
    const port = Number(address.split(":").pop());
    // 150 idle clients against a 64-descriptor limit: accepts fail with EMFILE inside Bun.
    const idle = await Promise.all(
      Array.from({ length: 150 }, () =>
        Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }),
      ),
    );
    for (const socket of idle) socket.end();
    // Once they are gone, a fresh client completes a greeting: the process is alive and accepting.
    const reply = await new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no greeting reply within 10 s")), 10_000);
      void Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: {
          open: (socket) => void socket.write(new Uint8Array([5, 1, 0])),
          data: (socket, data) => {
            clearTimeout(timer);
            resolve([...data]);
            socket.end();
          },
        },
      });
    });
    expect(reply).toEqual([5, 0]);
    expect(proxy.exitCode).toBeNull();
  } finally {
    proxy.kill("SIGTERM");
    expect(await proxy.exited).toBe(0);
  }
}, 30_000);
