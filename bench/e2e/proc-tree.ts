// A process tree's memory and CPU time, from /proc: the proxies are measured with every child they
// fork (Dante's negotiate/request/io processes). Not a sampler: the sections decide when to look.

import { readdirSync, readFileSync } from "node:fs";

const CLOCK_TICKS_PER_S = 100; // USER_HZ on Linux

interface Stat {
  pid: number;
  ppid: number;
  cpuTicks: number;
}

function readStat(pid: number): Stat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm may hold spaces and parentheses: fields start after the LAST ')'.
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    // fields[0] is state (field 3); ppid is field 4, utime 14, stime 15.
    return { pid, ppid: Number(fields[1]), cpuTicks: Number(fields[11]) + Number(fields[12]) };
  } catch {
    return null;
  }
}

/** `root` and all its descendants (threads are part of their process, not listed). */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readStat(Number(entry));
    if (stat === null) continue;
    const list = children.get(stat.ppid);
    if (list === undefined) children.set(stat.ppid, [stat.pid]);
    else list.push(stat.pid);
  }
  const tree: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    tree.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return tree;
}

function statusField(pid: number, file: string, field: string): number {
  try {
    const match = readFileSync(`/proc/${pid}/${file}`, "utf8").match(
      new RegExp(`^${field}:\\s+(\\d+) kB`, "m"),
    );
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0; // exited between listing and reading
  }
}

export interface Memory {
  rssBytes: number;
  pssBytes: number;
  processes: number;
}

/** Sum of VmRSS (and of Pss, which splits shared pages) over the process tree of `root`. */
export function treeMemory(root: number, withPss = false): Memory {
  const pids = processTree(root);
  let rssBytes = 0;
  let pssBytes = 0;
  for (const pid of pids) {
    rssBytes += statusField(pid, "status", "VmRSS");
    if (withPss) pssBytes += statusField(pid, "smaps_rollup", "Pss");
  }
  return { rssBytes, pssBytes, processes: pids.length };
}

/** User + system CPU seconds used so far by the process tree of `root` (all threads). */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) ticks += readStat(pid)?.cpuTicks ?? 0;
  return ticks / CLOCK_TICKS_PER_S;
}

/** The hard open-file limit children may raise their soft limit to (bash `ulimit -Hn`). */
