// The status page (src/admin/status.html) in a real browser: headless Chromium loads GET / from a
// running sockpool while SOCKS5 traffic flows, and the test reads the rendered DOM twice to see the
// live numbers appear and grow. Then the same page against a stand-in API
// (test/fixtures/fake-admin-api.ts) that sends markup in every string, fails one endpoint and
// requires a token. Not the admin API's own contract (its endpoints are tested on their own).
//
// STATUS_PAGE_SCREENSHOT=docs/status-page.png also saves the page of the running sockpool as a PNG.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import packageJson from "../../package.json" with { type: "json" };
import { HOSTILE, startFakeAdminApi } from "../fixtures/fake-admin-api.ts";
import { cleanup } from "../support/cleanup.ts";
import type { Conn } from "../support/conn.ts";
import { type SpawnedProxy, spawnProxy } from "../support/proxy-process.ts";
import { socksConnect } from "../support/socks-client.ts";
import { collect, requireTool } from "../support/spawn.ts";
import { startEcho } from "../support/targets.ts";
import { waitFor, withDeadline } from "../support/wait.ts";

afterAll(cleanup);

const PAGE_PATH = new URL("../../src/admin/status.html", import.meta.url);
/** Chromium's virtual clock: how long the page runs (and polls) before the DOM is read. */
const PAGE_RUN_MS = 2500;
/** Poll period the page is loaded with, so one run sees about a dozen polls. */
const PAGE_REFRESH_MS = 200;
const CHROMIUM_MS = 30_000;

interface Metric {
  text: string;
  /** data-value: the raw number behind the formatted text, or null for text and "no value yet". */
  value: number | null;
}

/** Runs headless Chromium on `url` with its own throwaway profile; `output` picks what it prints. */
async function chromium(
  url: string,
  output: ["--dump-dom"] | [`--screenshot=${string}`, `--window-size=${number},${number}`],
  runMs = PAGE_RUN_MS,
): Promise<string> {
  const profile = await mkdtemp(join(tmpdir(), "sockpool-chromium-"));
  try {
    const child = Bun.spawn(
      [
        requireTool("chromium"),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        `--user-data-dir=${profile}`,
        `--virtual-time-budget=${runMs}`,
        ...output,
        url,
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const finished = await withDeadline(collect(child), CHROMIUM_MS, `chromium on ${url}`).catch(
      (error) => {
        child.kill("SIGKILL");
        throw error;
      },
    );
    if (finished.code !== 0) {
      throw new Error(`chromium exited with ${finished.code} on ${url}:\n${finished.stderr}`);
    }
    return finished.stdout;
  } finally {
    await rm(profile, { recursive: true, force: true });
  }
}

/** What Chromium's serializer escapes in text and attribute values, undone. */
function decodeText(text: string): string {
  return text
    .replaceAll("&quot;", '"')
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&nbsp;", "\u00a0")
    .replaceAll("&amp;", "&");
}

/** Every element with data-metric (the page puts one on each live number), by name. */
async function readMetrics(html: string): Promise<Map<string, Metric>> {
  const metrics = new Map<string, Metric>();
  let current: Metric | null = null;
  await new HTMLRewriter()
    .on("[data-metric]", {
      element(element) {
        const raw = element.getAttribute("data-value");
        current = { text: "", value: raw === null || raw === "" ? null : Number(raw) };
        metrics.set(decodeText(element.getAttribute("data-metric")!), current);
      },
      text(chunk) {
        if (current !== null) current.text += decodeText(chunk.text);
      },
    })
    .transform(new Response(html))
    .text();
  return metrics;
}

/** The text of each visible error badge, by the endpoint it reports. */
async function visibleErrors(html: string): Promise<Map<string, string>> {
  const errors = new Map<string, string>();
  let current: { endpoint: string; text: string } | null = null;
  await new HTMLRewriter()
    .on("[data-error-for]", {
      element(element) {
        current = null;
        if (element.hasAttribute("hidden")) return;
        current = { endpoint: element.getAttribute("data-error-for")!, text: "" };
      },
      text(chunk) {
        if (current === null) return;
        current.text += decodeText(chunk.text);
        if (chunk.lastInTextNode) errors.set(current.endpoint, current.text);
      },
    })
    .transform(new Response(html))
    .text();
  return errors;
}

/** Whether `needle` is in `haystack`, failing with the needle rather than a whole page. */
function expectContains(haystack: string, needle: string, contains = true): void {
  expect({ needle, found: haystack.includes(needle) }).toEqual({ needle, found: contains });
}

function metric(metrics: Map<string, Metric>, name: string): Metric {
  const found = metrics.get(name);
  if (found === undefined) throw new Error(`the page has no data-metric="${name}"`);
  return found;
}

function value(metrics: Map<string, Metric>, name: string): number {
  const found = metric(metrics, name);
  if (found.value === null || !Number.isFinite(found.value)) {
    throw new Error(`data-metric="${name}" has no number (text "${found.text}")`);
  }
  return found.value;
}

/** The admin server's base URL, from the address spawnProxy read off its start-up line. */
function adminBase(proxy: SpawnedProxy): string {
  expect(proxy.admin).not.toBe("");
  return `http://${proxy.admin}/`;
}

/**
 * SOCKS5 connections to an echo target, `parallel` at a time, each sending and reading back
 * `bytesEach` before it closes, until stopped. `completed` counts the round trips done.
 */
function startTraffic(socksPort: number, targetPort: number, parallel: number, bytesEach: number) {
  const payload = new Uint8Array(bytesEach).fill(0x5a);
  const state = { completed: 0, running: true, error: null as Error | null };
  const loop = async () => {
    while (state.running) {
      const { conn } = await socksConnect(socksPort, "127.0.0.1", targetPort);
      await conn.write(payload);
      await conn.read(bytesEach);
      conn.end();
      state.completed += 1;
    }
  };
  const loops = Array.from({ length: parallel }, () =>
    loop().catch((error: Error) => {
      state.error ??= error;
    }),
  );
  return {
    state,
    /** Waits until `count` round trips are done; a failed one fails the wait with its error. */
    async completed(count: number): Promise<void> {
      await waitFor(() => {
        if (state.error) throw state.error;
        return state.completed >= count;
      }, `${count} connections through the proxy`);
    },
    async stop() {
      state.running = false;
      await Promise.all(loops);
      if (state.error) throw state.error;
    },
  };
}

describe("the status page of a running sockpool, in headless Chromium", () => {
  test("shows the proxy's live numbers, and they grow while traffic flows", async () => {
    const target = startEcho();
    const proxy = await spawnProxy([
      "--socks",
      "127.0.0.1:0",
      "--workers",
      "2",
      "--admin",
      "127.0.0.1:0",
      "--upstream-pool",
    ]);
    const base = adminBase(proxy);
    const pageUrl = `${base}?refresh=${PAGE_REFRESH_MS}`;

    // Three connections stay open (the open-connections table), others come and go.
    const held: Conn[] = [];
    for (let index = 0; index < 3; index += 1) {
      const { conn } = await socksConnect(proxy.socksPort, "127.0.0.1", target.port);
      await conn.write("held");
      await conn.read(4);
      held.push(conn);
    }
    const traffic = startTraffic(proxy.socksPort, target.port, 4, 64 * 1024);
    await traffic.completed(10);

    const firstHtml = await chromium(pageUrl, ["--dump-dom"]);
    const first = await readMetrics(firstHtml);
    expect(await visibleErrors(firstHtml)).toEqual(new Map());
    expect(metric(first, "version").text).toBe(packageJson.version);
    expect(metric(first, "ready").text).toBe("ready");
    expect(value(first, "connections_open")).toBeGreaterThanOrEqual(3);
    expect(value(first, "connections_total")).toBeGreaterThanOrEqual(13);
    expect(value(first, "bytes_up")).toBeGreaterThan(10 * 64 * 1024);
    expect(value(first, "bytes_down")).toBeGreaterThan(10 * 64 * 1024);
    // Rates need two polls of one page load: there was more than one, and it drew a scale.
    expect(value(first, "bytes_down_rate")).toBeGreaterThanOrEqual(0);
    expect(value(first, "connections_chart_open_top")).toBeGreaterThan(0);
    expect(value(first, "worker.0.connections_total")).toBeGreaterThanOrEqual(0);
    expect(value(first, "worker.1.connections_total")).toBeGreaterThanOrEqual(0);
    expect(value(first, "buffers.slots_total")).toBeGreaterThan(0);
    expect(metric(first, "buffers.strategy").text).not.toBe("–");
    // The upstream pool keeps the echo target warm: its row in the per-destination table.
    expect(metric(first, "pool.enabled").text).toBe("on");
    expect(value(first, "pool.total_created")).toBeGreaterThan(0);
    expectContains(firstHtml, `<tr data-key="127.0.0.1:${target.port}">`);
    expect(value(first, "connections.total")).toBeGreaterThanOrEqual(3);
    // The listener chip and a held connection's target, as the page wrote them.
    expectContains(firstHtml, `127.0.0.1:${proxy.socksPort}`);
    expectContains(firstHtml, `127.0.0.1:${target.port}`);

    const before = traffic.state.completed;
    await traffic.completed(before + 10);
    const secondHtml = await chromium(pageUrl, ["--dump-dom"]);
    const second = await readMetrics(secondHtml);
    expect(await visibleErrors(secondHtml)).toEqual(new Map());
    for (const name of ["connections_total", "bytes_up", "bytes_down", "pool.pool_hits"]) {
      expect({ name, grew: value(second, name) > value(first, name) }).toEqual({
        name,
        grew: true,
      });
    }
    // uptime_s is whole seconds: it may not have ticked between two loads a second apart.
    expect(value(second, "uptime")).toBeGreaterThanOrEqual(value(first, "uptime"));
    // Some poll in one of the two runs saw bytes move between two polls.
    expect(
      Math.max(value(first, "throughput_chart_top"), value(second, "throughput_chart_top")),
    ).toBeGreaterThan(0);

    const screenshot = process.env.STATUS_PAGE_SCREENSHOT;
    if (screenshot) {
      // 120 polls fill the charts' two-minute window. Chromium's clock is virtual here (it jumps
      // while the page waits on a timer), so the picture's rates are lower than the real ones.
      const path = resolve(screenshot);
      await chromium(
        `${base}?refresh=100`,
        [`--screenshot=${path}`, "--window-size=1280,1600"],
        12_000,
      );
      expect(await Bun.file(path).exists()).toBe(true);
      console.log(`status page screenshot: ${path}`);
    }

    await traffic.stop();
    for (const conn of held) conn.end();
    expect(await proxy.stop()).toBe(0);
  }, 60_000);

  test("behind a token: /?token=T serves the page, and its fetches carry T as a bearer token", async () => {
    const token = "status+page/token=0123456789";
    const dir = await mkdtemp(join(tmpdir(), "sockpool-status-page-"));
    try {
      const config = join(dir, "sockpool.toml");
      await Bun.write(config, `[admin]\nlisten = "127.0.0.1:0"\ntoken = "${token}"\n`);
      const proxy = await spawnProxy([
        "--config",
        config,
        "--socks",
        "127.0.0.1:0",
        "--workers",
        "1",
        "--admin",
        "127.0.0.1:0",
      ]);
      const base = adminBase(proxy);
      const pageUrl = `${base}?token=${encodeURIComponent(token)}&refresh=${PAGE_REFRESH_MS}`;
      // The API itself wants the header; a browser's first navigation can only send the query.
      expect((await fetch(`${base}api/status`)).status).toBe(401);
      expect((await fetch(`${base}api/status?token=${encodeURIComponent(token)}`)).status).toBe(
        401,
      );
      expect((await fetch(base)).status).toBe(401);
      expect((await fetch(`${base}?token=wrong-token-0123456789`)).status).toBe(401);
      expect((await fetch(pageUrl)).status).toBe(200);

      const html = await chromium(pageUrl, ["--dump-dom"]);
      expect(await visibleErrors(html)).toEqual(new Map());
      const metrics = await readMetrics(html);
      expect(metric(metrics, "ready").text).toBe("ready");
      expect(value(metrics, "connections_total")).toBeGreaterThanOrEqual(0);
      expect(value(metrics, "buffers.slots_total")).toBeGreaterThan(0);
      expect(await proxy.stop()).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("the status page against a stand-in admin API, in headless Chromium", () => {
  test("shows markup from the API as text, badges a failing endpoint and keeps polling, sends the token", async () => {
    const token = "status+page/test&token=0123456789";
    const api = await startFakeAdminApi({
      hostile: true,
      failing: ["/api/pool/stats"],
      token,
    });
    try {
      const html = await chromium(
        `${api.url}?token=${encodeURIComponent(token)}&refresh=${PAGE_REFRESH_MS}`,
        ["--dump-dom"],
      );
      // No markup from the API became an element, so none of its scripts ran.
      expect(html.match(/<title>([^<]*)<\/title>/)?.[1]).toBe("sockpool status");
      for (const tag of ["<img", "<svg", "<b>", "<i>", "<u>", "<script>document"]) {
        expectContains(html, tag, false);
      }
      const metrics = await readMetrics(html);
      const text = decodeText(html);
      expectContains(text, HOSTILE.client);
      expectContains(text, HOSTILE.target);
      expectContains(text, HOSTILE.user);
      // A bidi override is shown as its escape, not applied.
      expectContains(text, "<b>injected</b> \\u202eevil");
      expectContains(text, "\u202e", false);
      expect(metric(metrics, `outcome.${HOSTILE.outcome}`).value).toBe(1);

      // The failing endpoint has its badge, its section is marked stale, the others render.
      const errors = await visibleErrors(html);
      expect([...errors.keys()]).toEqual(["pool"]);
      expect(errors.get("pool")).toContain("HTTP 500");
      expect(value(metrics, "connections_total")).toBeGreaterThan(0);
      expect(value(metrics, "buffers.slots_total")).toBe(4096);
      expect(metric(metrics, "pool.total_idle").value).toBeNull();
      expect(metric(metrics, "events.shown").value).toBeGreaterThan(0);

      // Polling went on after the failure, with the token on every API request, and events were
      // asked for from the last id seen.
      const apiRequests = api.requests.filter((request) => request.path.startsWith("/api/"));
      expect(apiRequests.every((request) => request.authorization === `Bearer ${token}`)).toBe(
        true,
      );
      const poolPolls = apiRequests.filter((request) => request.path === "/api/pool/stats");
      expect(poolPolls.length).toBeGreaterThanOrEqual(3);
      const since = apiRequests
        .filter((request) => request.path.startsWith("/api/telemetry/events"))
        .map((request) => Number(new URL(request.path, api.url).searchParams.get("since")));
      expect(since[0]).toBe(0);
      expect(Math.max(...since)).toBeGreaterThan(0);
    } finally {
      api.stop();
    }
  }, 30_000);

  test("the page builds no markup from strings and asks nothing of other origins", async () => {
    const source = await Bun.file(PAGE_PATH).text();
    for (const sink of [
      "innerHTML",
      "outerHTML",
      "insertAdjacentHTML",
      "document.write",
      "eval(",
    ]) {
      expectContains(source, sink, false);
    }
    expect(source).not.toMatch(/(https?:)?\/\/[a-z0-9.-]+\.[a-z]{2,}/i);
    expect(source).toContain("default-src 'none'");
  });
});
