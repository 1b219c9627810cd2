// Access rules in the running pipeline: a denial answers 02 and is logged with its rule, a name
// that resolves to a denied address is denied, and the proxy never dials itself (the self-loop
// that used to eat every descriptor) or the link-local metadata address.

import { afterAll, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { startTestProxy, type TestProxy } from "../support/proxy.ts";
import { REPLY, SocksReplyError, socksConnect } from "../support/socks-client.ts";
import { connectTcp } from "../support/sockets.ts";
import { onBothLoopbacks, refusedPort, startEcho } from "../support/targets.ts";
import { waitFor } from "../support/wait.ts";

afterAll(cleanup);

/** The SOCKS reply code a CONNECT gets (0 = succeeded, and the connection is closed again). */
async function replyTo(tp: TestProxy, host: string, port: number): Promise<number> {
  try {
    const { conn, reply } = await socksConnect(tp.socksPort, host, port);
    conn.end();
    return reply.code;
  } catch (error) {
    if (error instanceof SocksReplyError) return error.reply.code;
    throw error;
  }
}

async function deniedLine(tp: TestProxy, target: string) {
  await waitFor(
    () => tp.logs.some((record) => record.msg === "access denied" && record.target === target),
    `an access denied line for ${target}`,
  );
  const connection = await tp.waitForConnectionLog((r) => r.target === target, target);
  expect(connection).toMatchObject({ outcome: "denied", reply: REPLY.ruleset });
  return tp.logs.find((record) => record.msg === "access denied" && record.target === target)!;
}

test("a deny rule answers 02 and the log names the rule; other requests pass", async () => {
  const echo = startEcho();
  const tp = await startTestProxy({
    access: { rules: [{ name: "no echo", action: "deny", ports: [echo.port] }] },
  });
  try {
    expect(await replyTo(tp, "127.0.0.1", echo.port)).toBe(REPLY.ruleset);
    expect((await deniedLine(tp, `127.0.0.1:${echo.port}`)).rule).toBe("no echo");
    const other = startEcho();
    try {
      expect(await replyTo(tp, "127.0.0.1", other.port)).toBe(REPLY.succeeded);
    } finally {
      other.close();
    }
  } finally {
    await tp.close();
    echo.close();
  }
});

test("a name that resolves to a denied address is denied: no bypass by naming it", async () => {
  const echo = onBothLoopbacks((host, port) => startEcho(host, port));
  const tp = await startTestProxy({
    access: { rules: [{ action: "deny", destinations: ["127.0.0.0/8", "::1"] }] },
  });
  try {
    expect(await replyTo(tp, "localhost", echo.port)).toBe(REPLY.ruleset);
    expect((await deniedLine(tp, `localhost:${echo.port}`)).rule).toBe("access.rules[0]");
  } finally {
    await tp.close();
    echo.close();
  }
});

test("access.default = deny refuses what no rule allows", async () => {
  const echo = startEcho();
  const tp = await startTestProxy({
    access: { default: "deny", rules: [{ action: "allow", ports: [echo.port] }] },
  });
  try {
    expect(await replyTo(tp, "127.0.0.1", echo.port)).toBe(REPLY.succeeded);
    expect(await replyTo(tp, "127.0.0.1", refusedPort())).toBe(REPLY.ruleset);
  } finally {
    await tp.close();
    echo.close();
  }
});

test("a CONNECT to the proxy's own port is refused: the proxy never dials itself", async () => {
  const tp = await startTestProxy();
  try {
    expect(await replyTo(tp, "127.0.0.1", tp.socksPort)).toBe(REPLY.ruleset);
    expect((await deniedLine(tp, `127.0.0.1:${tp.socksPort}`)).rule).toBe("builtin:self");
    expect(await replyTo(tp, "169.254.169.254", 80)).toBe(REPLY.ruleset);
    expect((await deniedLine(tp, "169.254.169.254:80")).rule).toBe("builtin:link-local");
  } finally {
    await tp.close();
  }
});

test("a forward listener whose target is itself closes the client instead of looping", async () => {
  // Before, one client made the proxy connect to itself again and again: 1,024 descriptors,
  // 505 CLOSE_WAIT sockets and a core at 100 %.
  const port = refusedPort(); // free now; the forward listens on it and targets it
  const tp = await startTestProxy({
    forward: [{ listen: `127.0.0.1:${port}`, target: `127.0.0.1:${port}` }],
  });
  try {
    const conn = await connectTcp("127.0.0.1", port);
    await conn.waitEnd();
    const line = await tp.waitForConnectionLog((r) => r.kind === "forward", "the forward line");
    expect(line.outcome).toBe("denied");
    await waitFor(() => tp.proxy.stats().connections_open === 0, "nothing left open");
    expect(tp.proxy.stats().connections_total).toBe(1);
  } finally {
    await tp.close();
  }
});
