// The WAN section of the e2e benchmark (bench/wan/) at a tiny size, so it cannot rot: a 3 ms link,
// a few connections per path. Its figures are not judged, except what proves the emulated link is
// one: a TCP handshake across it takes at least a round trip (2 × the one-way delay), and so does the
// proxy's upstream connect with the pool off. Then the teardown: no namespace, device or process
// left behind, after a normal end and after Ctrl-C mid-run. Needs root and /dev/net/tun; skipped,
// saying why, where network namespaces cannot be made.

import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { leftovers, linkUnavailable } from "../../bench/wan/link.ts";
import type { WanReport } from "../../bench/wan/run.ts";
import { runBun } from "../support/spawn.ts";

const BENCH = new URL("../../bench/e2e/main.ts", import.meta.url);
const DELAY_MS = 3;
const SERIAL = 5;
const CONNECTIONS = 24;
const CONCURRENCY = 8;
const ARGS = [
  "--only",
  "wan",
  "--smoke",
  "--wan-delay-ms",
  String(DELAY_MS),
  "--wan-serial",
  String(SERIAL),
  "--wan-connections",
  String(CONNECTIONS),
  "--wan-concurrency",
  String(CONCURRENCY),
];
const TIMEOUT_MS = 60_000;

const unavailable = linkUnavailable();
if (unavailable !== null) console.warn(`wan-smoke: skipped: ${unavailable}`);

/** Processes whose command line names one of `devices` (the delay line is started with both). */
function processesNaming(devices: string[]): string[] {
  const ps = Bun.spawnSync(["ps", "-eo", "pid=,args="], { stdout: "pipe" });
  return ps.stdout
    .toString()
    .split("\n")
    .filter((line) => devices.some((device) => line.includes(device)));
}

test.skipIf(unavailable !== null)(
  "bench/e2e --only wan: the link delays every packet, every path completes, teardown leaves nothing",
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-wan-test-"));
    try {
      const { code, stdout, stderr } = await runBun(BENCH, ARGS, { BENCH_RESULTS_DIR: dir });
      expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
      expect(stdout).toContain("checked with ps: no process left running");
      expect(stdout).toContain(`WAN results: ${path.join(dir, "wan.md")}`);

      const report = JSON.parse(readFileSync(path.join(dir, "wan.json"), "utf8")) as WanReport;
      expect(report.skipped).toBeNull();
      expect(report.settings.delayMs).toBe(DELAY_MS);
      // The link is real: a handshake across it waits for a SYN and a SYN-ACK, each delayed.
      const link = report.link!;
      expect(link.connect_p50_ms!).toBeGreaterThanOrEqual(2 * DELAY_MS);
      expect(link.delay_line!.reason).toBe("signal");
      for (const direction of [link.delay_line!.to_far, link.delay_line!.to_root]) {
        expect(direction.forwarded).toBeGreaterThan(0);
        expect(direction.dropped_full + direction.dropped_oversize + direction.write_errors).toBe(
          0,
        );
      }

      expect(report.rows.map((row) => row.id)).toEqual(["direct", "pool-off", "pool-on"]);
      for (const row of report.rows) {
        expect(row.error).toBeUndefined();
        expect(row.serial!.completed).toBe(SERIAL);
        expect(row.concurrent!.completed).toBe(CONNECTIONS);
        for (const phase of [row.serial!, row.concurrent!]) {
          expect(phase.errors).toBe(0);
          // Request and response cross the link after the connection is up: another round trip.
          expect(phase.first_byte_ms.p50).toBeGreaterThanOrEqual(2 * DELAY_MS);
          expect(phase.first_byte_ms.p99).toBeGreaterThanOrEqual(phase.first_byte_ms.p50);
        }
        if (row.id !== "direct") expect(row.concurrent!.proxy_cpu_s).toBeGreaterThanOrEqual(0);
      }
      // Pool off, every CONNECT waits for the proxy's own handshake across the link.
      const off = report.rows[1]!;
      expect(off.serial!.reply_ms!.p50).toBeGreaterThanOrEqual(2 * DELAY_MS);
      expect(off.serial!.fast_replies).toBe(0);
      // The target answered exactly the requests made (each path's warm-up is 2 × C connections):
      // none lost, none twice.
      const target = report.target!;
      expect(target.errors).toBe(0);
      expect(target.served).toBe(3 * (2 * CONCURRENCY + SERIAL + CONNECTIONS));
      expect(target.served + target.unused).toBeLessThanOrEqual(target.accepted);

      // Torn down: checked here too, not only by the benchmark itself.
      expect(report.leftovers).toEqual([]);
      const made = {
        namespace: link.namespace,
        rootDevice: link.root_device,
        farDevice: link.far_device,
      };
      expect(leftovers(made)).toEqual([]);
      expect(processesNaming([link.root_device, link.far_device])).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  TIMEOUT_MS,
);

test.skipIf(unavailable !== null)(
  "bench/e2e --only wan: Ctrl-C mid-run removes the namespace, the devices and every process",
  async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sockpool-wan-test-"));
    // Big enough to still be running when interrupted.
    const child = Bun.spawn(
      ["bun", BENCH.pathname, ...ARGS, "--wan-serial", "100000", "--wan-seconds", "60"],
      { env: { ...process.env, BENCH_RESULTS_DIR: dir }, stdout: "pipe", stderr: "pipe" },
    );
    try {
      // Read until the link is up, then interrupt.
      const reader = child.stdout.getReader();
      const decoder = new TextDecoder();
      let seen = "";
      let linkLine: RegExpMatchArray | null = null;
      while (linkLine === null) {
        const { done, value } = await reader.read();
        if (done) throw new Error(`the benchmark ended before its link was up:\n${seen}`);
        seen += decoder.decode(value, { stream: true });
        linkLine = seen.match(/link up: \S+ on (\S+) ⇄ \S+ on (\S+) in namespace (\S+),/);
      }
      const [, rootDevice, farDevice, namespace] = linkLine as unknown as [
        string,
        string,
        string,
        string,
      ];
      expect(leftovers({ namespace, rootDevice, farDevice }).length).toBe(3); // it is there
      const stderrText = new Response(child.stderr).text();
      child.kill("SIGINT");
      while (!(await reader.read()).done) {
        // Drain stdout so the benchmark never blocks on a full pipe while it tears down.
      }
      const [code, stderr] = await Promise.all([child.exited, stderrText]);
      expect(code).toBe(130);
      expect(stderr).toContain("SIGINT: stopping every process started");
      expect(stderr).not.toContain("still running");
      expect(leftovers({ namespace, rootDevice, farDevice })).toEqual([]);
      expect(processesNaming([rootDevice, farDevice])).toEqual([]);
    } finally {
      child.kill("SIGKILL");
      rmSync(dir, { recursive: true, force: true });
    }
  },
  TIMEOUT_MS,
);
