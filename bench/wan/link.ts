// The WAN benchmark's emulated link: a network namespace `sockpool-wan-<pid>` joined to the root
// namespace by two TUN devices and the delay line (delay.zig) between them, so every packet to or
// from the target waits a fixed time each way. Addresses come from 198.18.0.0/15 (RFC 2544's
// benchmarking range): 198.18.0.1 on the root side, 198.18.1.1 in the namespace, a host route each
// way (point-to-point peers). Not the measurement (run.ts) and not a general netns library.
//
// Teardown: the devices are non-persistent, so they vanish with the delay line however it ends (it
// also dies with its parent); the namespace is deleted by close(), by the signal cleanup, and, after
// a run that was killed outright, by the next run (a namespace whose pid is gone).

import { accessSync, constants, readFileSync } from "node:fs";
import { cleanupOnSignal, type Proc, REPO_ROOT, spawn, stop } from "../e2e/procs.ts";
import { FAR_ADDRESS, ROOT_ADDRESS } from "./protocol.ts";

const NAMESPACE_PREFIX = "sockpool-wan-";
/** Device names: "spw<pid>r" (root side) and "spw<pid>f" (far side), within IFNAMSIZ (15). */
const DEVICE_PREFIX = "spw";
const DELAY_BINARY = `${REPO_ROOT}zig-out/bin/sockpool-wan-delay`;
const READY_MS = 10_000;
/** Linux capability bits (capability.h) the link needs: devices and addresses, and the mount
 *  `ip netns add` makes. */
const CAP_NET_ADMIN = 12;
const CAP_SYS_ADMIN = 21;

export interface DirectionStats {
  forwarded: number;
  dropped_full: number;
  dropped_oversize: number;
  write_errors: number;
  /** The errno of the last refused write, or 0. */
  write_errno_last: number;
  depth_max: number;
}

/** The delay line's counters when it stopped. */
export interface DelayStats {
  reason: string;
  delay_ms: number;
  to_far: DirectionStats;
  to_root: DirectionStats;
}

export interface Link {
  namespace: string;
  rootDevice: string;
  farDevice: string;
  delayMs: number;
  /** argv run inside the namespace. */
  inside(argv: string[]): string[];
  /** Stops the delay line and deletes the namespace; returns the delay line's counters (null
   *  if it died without them). Idempotent. */
  close(): Promise<DelayStats | null>;
}

// ── Can a link be made here? ───────────────────────────────────────────────────────────────────

function hasCapability(bit: number): boolean {
  try {
    const match = readFileSync("/proc/self/status", "utf8").match(/^CapEff:\s+([0-9a-f]+)$/m);
    return match !== null && ((BigInt(`0x${match[1]}`) >> BigInt(bit)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** Why a link cannot be made here, or null when it can. Looks, changes nothing. */
export function linkUnavailable(): string | null {
  if (process.platform !== "linux")
    return `network namespaces are Linux-only (this is ${process.platform})`;
  if (Bun.which("ip") === null && Bun.which("ip", { PATH: "/usr/sbin:/sbin" }) === null) {
    return "the ip command is missing (apt-get install -y iproute2)";
  }
  try {
    accessSync("/dev/net/tun", constants.R_OK | constants.W_OK);
  } catch {
    return "/dev/net/tun is missing or not accessible (no TUN support here)";
  }
  if (!hasCapability(CAP_NET_ADMIN) || !hasCapability(CAP_SYS_ADMIN)) {
    return `creating network namespaces needs CAP_NET_ADMIN and CAP_SYS_ADMIN, which this process lacks (uid ${process.getuid?.() ?? "?"}): run it as root with them`;
  }
  return null;
}

// ── ip, and what is left behind ────────────────────────────────────────────────────────────────

function ipPath(): string {
  return Bun.which("ip") ?? Bun.which("ip", { PATH: "/usr/sbin:/sbin" }) ?? "ip";
}

/** Runs `ip COMMAND` (its words have no spaces of their own); throws with its stderr on failure. */
function ip(command: string): string {
  const result = Bun.spawnSync([ipPath(), ...command.split(" ")], {
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    throw new Error(
      `ip ${command}: ${result.stderr.toString().trim() || `exit ${result.exitCode}`}`,
    );
  }
  return result.stdout.toString();
}

/** Runs `ip COMMAND`; whether it succeeded. */
function ipQuiet(command: string): boolean {
  const argv = [ipPath(), ...command.split(" ")];
  return Bun.spawnSync(argv, { stdout: "ignore", stderr: "ignore" }).exitCode === 0;
}

export function namespaces(): string[] {
  return ip("netns list")
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name !== "");
}

/** The benchmark's namespaces and devices that exist right now (for the check after teardown). */
export function leftovers(link: Pick<Link, "namespace" | "rootDevice" | "farDevice">): string[] {
  const left: string[] = [];
  const namespaceLeft = namespaces().includes(link.namespace);
  if (namespaceLeft) left.push(`namespace ${link.namespace}`);
  for (const device of [link.rootDevice, link.farDevice]) {
    // The far device lives in the namespace while the link is up; anywhere else only by mistake.
    const inside = namespaceLeft && ipQuiet(`-n ${link.namespace} link show dev ${device}`);
    if (inside || ipQuiet(`link show dev ${device}`)) left.push(`device ${device}`);
  }
  return left;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as { code?: string }).code === "EPERM";
  }
}

/** Deletes namespaces a killed run left behind (their pid is gone); says which. */
function removeStale(): string[] {
  const removed: string[] = [];
  for (const name of namespaces()) {
    const match = name.match(/^sockpool-wan-(\d+)$/);
    if (match === null || pidAlive(Number(match[1]))) continue;
    if (ipQuiet(`netns delete ${name}`)) removed.push(name);
  }
  return removed;
}

// ── Making the link ────────────────────────────────────────────────────────────────────────────

/** Builds the delay line (`zig build wan-delay`; a no-op when it is up to date). */
export function buildDelayLine(): string {
  const result = Bun.spawnSync(["bash", ".ci/zig.sh", "build", "wan-delay"], {
    cwd: REPO_ROOT,
    stdout: "pipe",
    stderr: "pipe",
  });
  if (result.exitCode !== 0) {
    throw new Error(`zig build wan-delay failed:\n${result.stderr.toString()}`);
  }
  return DELAY_BINARY;
}

async function readLine<T>(proc: Proc, what: string): Promise<T> {
  while (true) {
    const line = await proc.stdout!.next(READY_MS, `${proc.name}: ${what}`);
    if (line === null) {
      await proc.child.exited;
      throw new Error(`${proc.name} exited before ${what}:\n${proc.stderr()}`);
    }
    if (line.startsWith("{")) return JSON.parse(line) as T;
  }
}

/**
 * Makes the namespace, starts the delay line (which creates both devices), moves the far device
 * into the namespace and addresses both ends. On any failure everything made so far is undone.
 */
export async function openLink(
  delayMs: number,
  note: (line: string) => void,
  queuePackets = 2048,
): Promise<Link> {
  for (const name of removeStale()) note(`removed ${name}, left by a run that was killed`);
  const holder = ip(`-o addr show to ${ROOT_ADDRESS}/32`).trim();
  if (holder !== "") {
    throw new Error(
      `${ROOT_ADDRESS} is already assigned (${holder.split(/\s+/)[1]}): is another WAN benchmark running?`,
    );
  }
  const binary = buildDelayLine();
  const namespace = `${NAMESPACE_PREFIX}${process.pid}`;
  const rootDevice = `${DEVICE_PREFIX}${process.pid}r`;
  const farDevice = `${DEVICE_PREFIX}${process.pid}f`;
  let delay: Proc | null = null;
  let closed: Promise<DelayStats | null> | null = null;

  const close = (): Promise<DelayStats | null> => {
    closed ??= (async () => {
      let stats: DelayStats | null = null;
      if (delay !== null) {
        const proc = delay;
        await stop(proc);
        // Its last line (written on SIGTERM) says what it forwarded and dropped.
        try {
          while (true) {
            const line = await proc.stdout!.next(1_000, "the delay line's counters");
            if (line === null) break;
            const message = JSON.parse(line) as { type: string } & DelayStats;
            if (message.type === "stopped") stats = message;
          }
        } catch {
          // No counters: it was killed. The devices went with it all the same.
        }
      }
      ipQuiet(`netns delete ${namespace}`);
      return stats;
    })();
    return closed;
  };
  cleanupOnSignal(() => {
    ipQuiet(`netns delete ${namespace}`);
  });

  try {
    ip(`netns add ${namespace}`);
    delay = spawn(
      "wan delay line",
      [
        binary,
        "--root-dev",
        rootDevice,
        "--far-dev",
        farDevice,
        "--delay-ms",
        String(delayMs),
        "--queue-packets",
        String(queuePackets),
        "--parent-pid",
        String(process.pid),
      ],
      { stdout: "lines" },
    );
    await readLine(delay, "its devices");
    ip(`link set ${farDevice} netns ${namespace}`);
    // Point-to-point: each address names the other end as its peer, which installs the host
    // route to it, so each side reaches the other through its own device. No IPv6 link-local
    // addresses (addrgenmode none): nothing but the benchmark's own packets crosses the link. The
    // far end comes up first, so the root side never sends into a device that is still down.
    ip(`-n ${namespace} link set lo up`);
    ip(`-n ${namespace} link set dev ${farDevice} addrgenmode none`);
    ip(`-n ${namespace} addr add ${FAR_ADDRESS}/32 peer ${ROOT_ADDRESS}/32 dev ${farDevice}`);
    ip(`-n ${namespace} link set ${farDevice} up`);
    ip(`link set dev ${rootDevice} addrgenmode none`);
    ip(`addr add ${ROOT_ADDRESS}/32 peer ${FAR_ADDRESS}/32 dev ${rootDevice}`);
    ip(`link set ${rootDevice} up`);
  } catch (error) {
    await close();
    throw error;
  }
  return {
    namespace,
    rootDevice,
    farDevice,
    delayMs,
    inside: (argv) => [ipPath(), "netns", "exec", namespace, ...argv],
    close,
  };
}
