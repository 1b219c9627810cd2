// The admin API over HTTP (Bun.serve on the main thread): routing, the bearer-token check, and the
// answers' framing. Not what the answers say (views.ts, metrics.ts) nor the page (status.html).
//
//   GET /                         the status page (HTML)        GET /healthz   the process is up
//   GET /api/status               counters and Workers          GET /readyz    listening, not stopping
//   GET /api/connections          open connections, a page      GET /metrics   Prometheus text 0.0.4
//   GET /api/pool/stats           the upstream warm pool
//   GET /api/buffers/stats        the buffer pool
//   GET /api/telemetry/events     the latest operational events, ?since=ID
//
// The token: when admin.token is set, every request (every path, the page included) must carry
// `Authorization: Bearer TOKEN`; the page alone (GET /) may carry `?token=TOKEN` instead, since a
// browser opens it without a header. The config refuses a non-loopback listen address without one;
// on loopback a configured token is required all the same. Compared in constant time: both sides are
// hashed to SHA-256 first, so timingSafeEqual sees equal lengths and the token's length leaks too.

import { createHash, timingSafeEqual } from "node:crypto";
import type { Server } from "bun";
import type { Logger } from "../log.ts";
import { listenFailureReason } from "../port-probe.ts";
import { formatHostPort, parseHostPort } from "../protocol/host-port.ts";
import { EXPOSITION_CONTENT_TYPE } from "./exposition.ts";
import { renderMetrics } from "./metrics.ts";
import statusPageFile from "./status.html" with { type: "text" };
import {
  type AdminSources,
  buffersView,
  CONNECTIONS_LIMIT_DEFAULT,
  CONNECTIONS_LIMIT_MAX,
  connectionsView,
  isReady,
  type Snapshots,
  statusView,
  takeSnapshots,
  upstreamView,
} from "./views.ts";

// bun-types types every *.html import as an HTML bundle; `with { type: "text" }` makes it the file's
// text (also inside a compiled binary, which embeds it).
const STATUS_PAGE = statusPageFile as unknown as string;

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain; charset=utf-8";
const HTML_TYPE = "text/html; charset=utf-8";
/** A header naming the Workers that did not answer a snapshot in time (their numbers are missing). */
export const SILENT_WORKERS_HEADER = "sockpool-silent-workers";

type Route = (request: Request, url: URL) => Response | Promise<Response>;

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(`${body}\n`, {
    status,
    headers: { "content-type": TEXT_TYPE, "cache-control": "no-store", ...headers },
  });
}

function json(body: unknown, snapshots?: Snapshots): Response {
  const headers: Record<string, string> = {
    "content-type": JSON_TYPE,
    "cache-control": "no-store",
  };
  if (snapshots !== undefined && snapshots.silent.length > 0)
    headers[SILENT_WORKERS_HEADER] = snapshots.silent.join(",");
  return new Response(JSON.stringify(body), { headers });
}

/** A query parameter as a non-negative integer: `fallback` when absent, null when malformed. */
function integerParam(url: URL, name: string, fallback: number): number | null {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === "") return fallback;
  if (!/^\d{1,15}$/.test(raw)) return null;
  return Number(raw);
}

/** The request's URL. A request with no Host header (HTTP/1.0, as HAProxy's `option httpchk` sends
 *  by default) gets a relative `request.url` from Bun ("/readyz"), which `new URL()` alone rejects. */
export function requestUrl(request: Request): URL {
  return new URL(request.url, "http://host.invalid");
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text).digest();
}

/**
 * A checker of `Authorization: Bearer TOKEN` in constant time; allows everything without a token.
 * The status page (`GET /`) alone also takes `?token=TOKEN`: a browser cannot add a header to the
 * first navigation. The page then sends the token as a bearer header on every fetch, so no API
 * path ever accepts it in a query (where access logs and histories would keep it).
 */
export function bearerCheck(token: string | undefined): (request: Request) => boolean {
  if (token === undefined) return () => true;
  const expected = sha256(token);
  // Hashing the absent case too keeps the work the same whatever was sent.
  const matches = (given: string | undefined) =>
    timingSafeEqual(sha256(given ?? ""), expected) && given !== undefined;
  return (request) => {
    const header = request.headers.get("authorization") ?? "";
    if (matches(/^Bearer +(\S+) *$/i.exec(header)?.[1])) return true;
    const url = requestUrl(request);
    return url.pathname === "/" && matches(url.searchParams.get("token") ?? undefined);
  };
}

/** The routes, by path: GET (and HEAD) only. */
export function adminRoutes(sources: AdminSources, log: Logger): Map<string, Route> {
  return new Map<string, Route>([
    [
      "/",
      () =>
        new Response(STATUS_PAGE, {
          headers: { "content-type": HTML_TYPE, "cache-control": "no-store" },
        }),
    ],
    ["/healthz", () => text(200, "ok")],
    ["/readyz", () => (isReady(sources) ? text(200, "ready") : text(503, readyProblem(sources)))],
    ["/api/status", () => json(statusView(sources))],
    [
      "/api/buffers/stats",
      async () => {
        const snapshots = await takeSnapshots(sources);
        return json(buffersView(sources, snapshots), snapshots);
      },
    ],
    [
      "/api/pool/stats",
      async () => {
        const snapshots = await takeSnapshots(sources);
        return json(upstreamView(sources, snapshots), snapshots);
      },
    ],
    [
      "/api/connections",
      async (_request, url) => {
        const offset = integerParam(url, "offset", 0);
        const limit = integerParam(url, "limit", CONNECTIONS_LIMIT_DEFAULT);
        if (offset === null || limit === null || limit < 1 || limit > CONNECTIONS_LIMIT_MAX) {
          return text(
            400,
            `bad query: offset must be an integer ≥ 0 and limit an integer from 1 to ${CONNECTIONS_LIMIT_MAX}`,
          );
        }
        const snapshots = await takeSnapshots(sources, offset + limit);
        return json(connectionsView(snapshots, offset, limit), snapshots);
      },
    ],
    [
      "/api/telemetry/events",
      (_request, url) => {
        const since = integerParam(url, "since", 0);
        if (since === null)
          return text(400, "bad query: since must be an event id (an integer ≥ 0)");
        return json(sources.telemetry.since(since));
      },
    ],
    [
      "/metrics",
      async () => {
        const snapshots = await takeSnapshots(sources);
        // A Worker not listening yet (starting, or restarting after a crash) has nothing to say:
        // routine when a scraper meets a (re)start. One listening and silent is worth a warning.
        const up = new Set(
          sources.workers
            .workerStates()
            .filter((state) => state.up)
            .map((state) => state.worker),
        );
        const stuck = snapshots.silent.filter((worker) => up.has(worker));
        if (stuck.length > 0) {
          log.warn("admin: workers did not answer in time; their numbers are missing", {
            workers: stuck.join(","),
          });
        }
        return new Response(renderMetrics(sources, snapshots), {
          headers: { "content-type": EXPOSITION_CONTENT_TYPE, "cache-control": "no-store" },
        });
      },
    ],
  ]);
}

function readyProblem(sources: AdminSources): string {
  if (sources.stopping()) return "not ready: stopping (draining connections)";
  const down = sources.workers.workerStates().filter((state) => !state.up);
  return `not ready: ${down.length} worker${down.length === 1 ? "" : "s"} not listening (${down.map((state) => state.worker).join(", ")})`;
}

/** Answers one request: the token, then the method, then the route. */
export function adminHandler(
  sources: AdminSources,
  log: Logger,
): (request: Request) => Promise<Response> {
  const routes = adminRoutes(sources, log);
  const authorized = bearerCheck(sources.config.admin.token);
  return async (request) => {
    if (!authorized(request)) {
      return text(401, "unauthorized: send Authorization: Bearer <admin.token>", {
        "www-authenticate": 'Bearer realm="sockpool"',
      });
    }
    const url = requestUrl(request);
    const route = routes.get(url.pathname);
    if (route === undefined) return text(404, `not found: ${url.pathname}`);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, `method not allowed: ${request.method} (use GET)`, { allow: "GET, HEAD" });
    }
    return await route(request, url);
  };
}

export interface AdminServer {
  /** The address it listens on, port 0 resolved: "127.0.0.1:9090". */
  readonly address: string;
  stop(): Promise<void>;
}

/** Thrown when the admin API cannot listen: the message names the address, the error and the fix. */
export class AdminListenError extends Error {
  constructor(listen: string, cause: unknown) {
    const code = (cause as { code?: string }).code;
    const reason = listenFailureReason(cause);
    const fix =
      code === "EADDRINUSE"
        ? "another process serves that port: stop it, or choose another with --admin HOST:PORT (or [admin] listen), or --admin off"
        : "choose another address with --admin HOST:PORT (or [admin] listen), or --admin off";
    super(`admin API cannot listen on ${listen}: ${reason}; ${fix}`);
    this.name = "AdminListenError";
  }
}

/** Starts the admin API on `sources.config.admin.listen` (not "off"). Throws AdminListenError. */
export function startAdminServer(sources: AdminSources, log: Logger): AdminServer {
  const listen = sources.config.admin.listen;
  const address = parseHostPort(listen);
  if (address === null) throw new AdminListenError(listen, new Error("expected HOST:PORT"));
  const handle = adminHandler(sources, log);
  let server: Server<undefined>;
  try {
    server = Bun.serve({
      hostname: address.host,
      port: address.port,
      reusePort: false, // a second sockpool on the same port must fail here, not share it
      development: false,
      fetch: handle,
      error(error) {
        log.error("admin: unexpected exception", { error: error.stack ?? error.message });
        return text(500, "internal error (logged)");
      },
    });
  } catch (error) {
    throw new AdminListenError(listen, error);
  }
  return {
    address: formatHostPort(address.host, server.port ?? address.port),
    async stop() {
      await server.stop(true);
    },
  };
}
