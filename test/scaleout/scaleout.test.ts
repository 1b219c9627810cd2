// Scale-out on loopback, in CI: test/scaleout/scaleout.ts at its small default size (two sockpools
// behind HAProxy with health checks on /readyz, Prometheus scraping both, a continuous SOCKS5 load
// through HAProxy), one run of about 15 s whose figures each test below checks. Not `bun run
// scaleout` (the same run from the command line, any size).

import { afterAll, describe, expect, test } from "bun:test";
import { cleanup } from "../support/cleanup.ts";
import { killOthers } from "./cluster.ts";
import { DEFAULT_OPTIONS, runScaleout, type ScaleoutResult, summary } from "./scaleout.ts";

afterAll(async () => {
  killOthers(); // HAProxy and Prometheus, if a failure left them (the run stops them itself)
  await cleanup();
});

let run: Promise<ScaleoutResult> | null = null;
const result = () => {
  run ??= runScaleout(DEFAULT_OPTIONS).then((figures) => {
    console.log(summary(figures)); // the figures, in the CI log
    return figures;
  });
  return run;
};

const phase = (figures: ScaleoutResult, name: string) => {
  const found = figures.phases.find((entry) => entry.phase === name);
  if (found === undefined) throw new Error(`no phase ${name}`);
  return found;
};

describe("two sockpools behind HAProxy, scraped by Prometheus", () => {
  test("clients through HAProxy reach both instances", async () => {
    const figures = await result();
    const spread = phase(figures, "spread");
    expect(spread).toMatchObject({ failed: 0, retries: 0 });
    expect(spread.made).toBeGreaterThan(0);
    expect(figures.served.s1).toBeGreaterThan(0);
    expect(figures.served.s2).toBeGreaterThan(0);
  });

  test("each instance logs the real client address (PROXY protocol v2 from HAProxy)", async () => {
    const figures = await result();
    expect(figures.addresses.sampled).toBeGreaterThan(0);
    expect(figures.addresses.missing).toEqual([]);
    expect(figures.addresses.found).toBe(figures.addresses.sampled);
  });

  test.each(["s1", "s2"])(
    "a rolling restart of %s under load loses no connection",
    async (instance) => {
      const figures = await result();
      const restart = phase(figures, `restart ${instance}`);
      expect(restart.errors).toEqual([]);
      // retries: connects HAProxy had to try again because the instance refused them (its
      // listeners closed before HAProxy's check saw 503); server.drain_delay_ms makes them 0.
      expect(restart).toMatchObject({ failed: 0, retries: 0 });
      expect(restart.made).toBeGreaterThan(0);
      const step = figures.restarts.find((entry) => entry.instance === instance);
      expect(step?.code).toBe(0);
    },
  );

  test.each(["s1", "s2"])("a reload of %s under load loses no connection", async (instance) => {
    const figures = await result();
    const reload = phase(figures, `reload ${instance}`);
    expect(reload.errors).toEqual([]);
    expect(reload).toMatchObject({ failed: 0, retries: 0 });
    expect(reload.made).toBeGreaterThan(0);
    expect(figures.reloads.find((entry) => entry.instance === instance)?.msg).toBe("reloaded");
  });

  test("Prometheus' sum of the connection counters equals both instances' own /metrics", async () => {
    const figures = await result();
    const { value, direct, up } = figures.prometheus;
    expect(up).toBe(2);
    expect(direct.s1).toBeGreaterThan(0);
    expect(direct.s2).toBeGreaterThan(0);
    expect(value).toBe(direct.s1! + direct.s2!);
  });

  test("no instance logged a warning or an error", async () => {
    const figures = await result();
    expect(
      figures.notable.filter((line) => line.level === "warn" || line.level === "error"),
    ).toEqual([]);
  });
});
