// The throughput section: iperf3 (1 and 4 streams, each way) straight to the iperf3 server, through
// every SOCKS5 listener under proxychains4 and through every forward listener, with the proxy's CPU;
// and its table in e2e.md. Not iperf3 itself: iperf.ts runs and reads it.

import { markdownTable } from "../lib/markdown.ts";
import {
  type Context,
  eachRoute,
  endpoint,
  message,
  type PathInfo,
  progress,
  type Route,
} from "./harness.ts";
import { runIperf, writeProxychainsConfig } from "./iperf.ts";
import type { Report } from "./report.ts";
import { bestPeer, failures, fixed, ratio } from "./table-cells.ts";

export interface Cell {
  gbps: number | null;
  /** The proxy's CPU over the run, in cores (1.0 = one core busy). */
  proxy_cpu_cores: number | null;
  error?: string;
}

export interface ThroughputRow extends PathInfo {
  variants: Record<string, Cell>;
}

export async function measureThroughput(context: Context): Promise<ThroughputRow[]> {
  const { variants, seconds } = context.options;
  const rows = new Map<string, ThroughputRow>();
  const rowOf = (route: Route) => {
    let row = rows.get(route.info.id);
    if (row === undefined) {
      row = { ...route.info, variants: {} };
      rows.set(route.info.id, row);
    }
    return row;
  };
  if (context.iperf3 === null || context.proxychains === null) return [];
  const iperf3 = context.iperf3;
  const proxychains = context.proxychains;
  await eachRoute(
    context,
    false,
    true,
    (route, error) => {
      for (const variant of variants) rowOf(route).variants[variant.key] = failedCell(error);
    },
    async (route, running) => {
      const target = endpoint(route, running, context.targets, "iperf");
      const prefix =
        route.info.kind === "socks"
          ? [
              proxychains,
              "-q",
              "-f",
              writeProxychainsConfig(context.dir, route.spec!.id, target.port),
            ]
          : [];
      const port = route.info.kind === "socks" ? context.targets.iperfPort : target.port;
      for (const variant of variants) {
        try {
          const result = await runIperf(iperf3, {
            prefix,
            port,
            seconds,
            variant,
            ...(running === null ? {} : { cpuOf: running.proc.pid }),
          });
          const cell: Cell = { gbps: result.bitsPerSecond / 1e9, proxy_cpu_cores: result.cpuCores };
          rowOf(route).variants[variant.key] = cell;
          progress(
            `throughput · ${route.info.label} · ${variant.name}: ${cell.gbps!.toFixed(2)} Gbit/s` +
              (cell.proxy_cpu_cores === null
                ? ""
                : `, proxy ${cell.proxy_cpu_cores.toFixed(2)} cores`),
          );
        } catch (error) {
          rowOf(route).variants[variant.key] = failedCell(message(error));
          progress(`throughput · ${route.info.label} · ${variant.name}: FAILED ${message(error)}`);
        }
      }
    },
  );
  return [...rows.values()];
}

function failedCell(error: string): Cell {
  return { gbps: null, proxy_cpu_cores: null, error };
}

export function throughputMarkdown(report: Report): string {
  const rows = report.throughput;
  if (rows.length === 0) return "";
  const variants = report.settings.iperf_variants;
  const direct = rows.find((row) => row.kind === "direct");
  const best = new Map(
    variants.map((variant) => [
      variant.key,
      bestPeer(rows, (row) => row.variants[variant.key]?.gbps ?? null, "higher"),
    ]),
  );
  const body = rows.map((row) => [
    row.label,
    ...variants.map((variant) => {
      const cell = row.variants[variant.key];
      if (cell === undefined) return "–";
      if (cell.gbps === null) return "failed";
      const gbps = cell.gbps.toFixed(2);
      if (row.kind === "direct") return gbps;
      const base = direct?.variants[variant.key]?.gbps ?? null;
      return `${gbps} (${ratio(cell.gbps, base)} / ${ratio(cell.gbps, best.get(variant.key)?.value)})`;
    }),
    fixed(row.variants[variants[0]!.key]?.proxy_cpu_cores ?? null, 2),
  ]);
  const bestNames = variants
    .map((variant) => `${variant.name}: ${best.get(variant.key)?.row.label ?? "none"}`)
    .join("; ");
  return [
    `## Throughput (iperf3 -t ${report.settings.iperf_seconds}, Gbit/s)`,
    "",
    "Each cell: Gbit/s (× direct / × best peer). SOCKS5 paths run iperf3 under proxychains4;",
    `forward paths connect iperf3 to the forward listener. Best peer per column: ${bestNames}.`,
    "",
    markdownTable(
      ["path", ...variants.map((variant) => variant.name), "proxy CPU, 1 stream (cores)"],
      body,
    ),
    ...failures(rows.flatMap((row) => Object.values(row.variants).map((cell) => [row, cell]))),
  ].join("\n");
}
