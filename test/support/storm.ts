// The reset storm: test/fixtures/reset-storm.py connects N times to a port and closes each socket
// at once with SO_LINGER 0 (a reset, often before the server's accept callback ran). Not a load
// generator: it only makes that one fault, bounded by N.

import { join } from "node:path";
import type { Subprocess } from "bun";
import { REPO_ROOT } from "./proxy-process.ts";
import { withDeadline } from "./wait.ts";

/** Starts a storm of `clients` reset connections against 127.0.0.1:`port`. */
export function spawnResetStorm(
  port: number,
  clients: number,
): Subprocess<"ignore", "pipe", "pipe"> {
  return Bun.spawn(
    ["python3", join(REPO_ROOT, "test/fixtures/reset-storm.py"), String(port), String(clients)],
    { stdout: "pipe", stderr: "pipe" },
  );
}

/** Waits (bounded) for a storm to end: its exit code and output ("done N" when every client ran). */
export async function stormResult(
  child: Subprocess<"ignore", "pipe", "pipe">,
  ms = 30_000,
): Promise<{ code: number; out: string; err: string }> {
  const [code, out, err] = await withDeadline(
    Promise.all([
      child.exited,
      new Response(child.stdout).text(),
      new Response(child.stderr).text(),
    ]),
    ms,
    "a reset storm",
  );
  return { code, out: out.trim(), err };
}
