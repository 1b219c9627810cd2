// CI's fault soak: test/soak/soak.ts for 60 s in all, as two 30 s runs of the real proxy (2 Workers,
// --pool-checked), one steady and one with a Worker crash injected at half time, each asserting the
// driver's invariants from its JSON result. Not the 10-minute soak (`bun run soak`).
//
// Every invariant must hold in both runs, "every reset passed on as a reset" included: when a
// write is what finds a peer's reset, Bun 1.4.5 reports it as write() -1, then `end` and a close
// with no error; the relay takes the -1 for the reset it is (relay.ts, pipeBroken).
// Transfers the injected crash cuts off are counted apart by the driver: Bun ends a dead Worker's
// sockets with a FIN, so a client can see a clean end of a truncated stream (rare: about 1 in the
// 10-minute run).

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT } from "../support/proxy-process.ts";
import { collect } from "../support/spawn.ts";
import { withDeadline } from "../support/wait.ts";

const SECONDS = 30; // per run; two runs make the 60 s budget
const RUN_MS = 100_000; // the run, its start-up, drain and stop, on a busy 2-core machine
const TEST_MS = 120_000;

interface Invariant {
  name: string;
  ok: boolean;
  detail: string;
}

interface SoakResult {
  seed: number;
  crash: boolean;
  invariants: Invariant[];
  worker_restarts: number;
  completed_transfers: number;
  checksum_mismatches: number;
}

const tempDir = mkdtempSync(join(tmpdir(), "sockpool-soak-test-"));
afterAll(() => rmSync(tempDir, { recursive: true, force: true }));

/** Runs the driver once (as its own process, so it kills its own children) and reads its JSON. */
async function soak(name: string, extra: string[]): Promise<SoakResult> {
  const json = join(tempDir, `${name}.json`);
  const child = Bun.spawn(
    [process.execPath, "test/soak/soak.ts", "--seconds", String(SECONDS), "--json", json, ...extra],
    { cwd: REPO_ROOT, stdout: "pipe", stderr: "pipe", env: process.env },
  );
  try {
    const { stdout, stderr } = await withDeadline(collect(child), RUN_MS, `the ${name} soak`);
    console.log(stdout); // the summary table and the seed, in the CI log either way
    if (stderr.includes("soak: failed")) throw new Error(`the ${name} soak failed:\n${stderr}`);
    return JSON.parse(readFileSync(json, "utf8")) as SoakResult;
  } finally {
    if (child.exitCode === null) child.kill("SIGTERM"); // it stops every child it started
  }
}

let steadyRun: Promise<SoakResult> | null = null;
let crashRun: Promise<SoakResult> | null = null;
const steady = () => {
  steadyRun ??= soak("steady", ["--no-crash"]);
  return steadyRun;
};
const crash = () => {
  crashRun ??= soak("crash", []);
  return crashRun;
};

const failing = (result: SoakResult) => result.invariants.filter((invariant) => !invariant.ok);

describe(`soak, ${SECONDS} s steady`, () => {
  test(
    "descriptors, slots, open connections, RSS, checksums, resets passed on, no restart",
    async () => {
      const result = await steady();
      expect(failing(result)).toEqual([]);
      expect(result.completed_transfers).toBeGreaterThan(0);
      expect(result.worker_restarts).toBe(0);
    },
    TEST_MS,
  );
});

describe(`soak, ${SECONDS} s with one Worker crash`, () => {
  test(
    "restarted exactly once; its slots and places reclaimed; descriptors, RSS, checksums hold",
    async () => {
      const result = await crash();
      expect(failing(result)).toEqual([]);
      expect(result.worker_restarts).toBe(1);
    },
    TEST_MS,
  );
});
