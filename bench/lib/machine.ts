// The benchmarks' one description of the machine they ran on (CPU model, cores, kernel, memory, Bun),
// for the headers and the JSON of both reports. Not a load meter: pool/cpu-load.ts says how busy the
// machine was during a run.

import { readFileSync } from "node:fs";
import os from "node:os";

export interface Machine {
  /** "model name" from /proc/cpuinfo; os.cpus()'s model where that cannot be read. */
  cpu: string;
  cores: number;
  /** os.release(), e.g. "6.18.0-1-amd64". */
  kernel: string;
  /** Type, release and architecture, e.g. "Linux 6.18.0-1-amd64 x64". */
  os: string;
  memory_gib: number;
  bun_version: string;
  bun_revision: string;
}

function cpuModel(): string {
  try {
    const match = readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.+)$/m);
    if (match) return match[1]!.trim();
  } catch {
    // not Linux: os.cpus() it is
  }
  return os.cpus()[0]?.model ?? "unknown";
}

export function describeMachine(): Machine {
  return {
    cpu: cpuModel(),
    cores: navigator.hardwareConcurrency,
    kernel: os.release(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    memory_gib: os.totalmem() / 1024 ** 3,
    bun_version: Bun.version,
    bun_revision: Bun.revision,
  };
}
