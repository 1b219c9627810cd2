// What else the machine was doing while a benchmark ran: CPU used by this process (all its threads)
// and by everything else, from process.cpuUsage() and /proc/stat. The machine is shared (2 cores,
// other people's tests), and a second busy process turns "2 Workers contending" into "2 Workers
// taking turns on one core", which looks like no contention at all. Not a profiler.

import { readFileSync } from "node:fs";

export interface CpuSnapshot {
  /** This process, user + system, µs. */
  ownUs: number;
  /** All CPUs from /proc/stat, in clock ticks: busy (including steal) and total; null off Linux. */
  busyTicks: number | null;
  totalTicks: number | null;
  at: number;
}

function procStat(): { busy: number; total: number } | null {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0]!;
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number) as [number, number, number, number, number, number, number, number];
    const busy = user + nice + system + irq + softirq + steal;
    return { busy, total: busy + idle + iowait };
  } catch {
    return null;
  }
}

export function cpuSnapshot(): CpuSnapshot {
  const usage = process.cpuUsage();
  const stat = procStat();
  return {
    ownUs: usage.user + usage.system,
    busyTicks: stat?.busy ?? null,
    totalTicks: stat?.total ?? null,
    at: performance.now(),
  };
}

export interface CpuShare {
  /** Cores this process kept busy on average (plus `extraOwnUs`, e.g. a child process). */
  own_cores: number;
  /** Cores everything else kept busy on average (steal included); null when unknown. */
  other_cores: number | null;
}

export function cpuShare(
  before: CpuSnapshot,
  after: CpuSnapshot,
  cores: number,
  extraOwnUs = 0,
): CpuShare {
  const seconds = Math.max((after.at - before.at) / 1000, 1e-9);
  const own = (after.ownUs - before.ownUs + extraOwnUs) / 1e6 / seconds;
  let other: number | null = null;
  if (
    before.busyTicks !== null &&
    after.busyTicks !== null &&
    before.totalTicks !== null &&
    after.totalTicks !== null
  ) {
    const total = after.totalTicks - before.totalTicks;
    if (total > 0) {
      const busyCores = ((after.busyTicks - before.busyTicks) / total) * cores;
      other = Math.max(0, busyCores - own);
    }
  }
  return { own_cores: own, other_cores: other };
}
