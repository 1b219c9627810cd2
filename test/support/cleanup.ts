// One afterAll for tests that open fixtures: closes every child, socket, proxy and target left open. Not a per-test teardown.

import { closeOpenConns } from "./conn.ts";
import { closeOpenProxies } from "./proxy.ts";
import { killChildren } from "./proxy-process.ts";
import { closeOpenTargets } from "./targets.ts";
import { closeOpenUdpSockets } from "./udp.ts";

/** Closes every proxy, target, socket and child process a test left open. For afterAll. */
export async function cleanup(): Promise<void> {
  await killChildren();
  closeOpenConns();
  await closeOpenProxies();
  closeOpenTargets();
  closeOpenUdpSockets();
}
