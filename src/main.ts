#!/usr/bin/env bun
// sockpool's entry point: config → pool memory → the admin API → supervised Workers, a graceful
// stop on SIGTERM/SIGINT (a second one closes everything at once) and a reload on SIGHUP. Not the proxy itself (src/proxy/, run inside each Worker by src/worker.ts)
// nor the admin API's answers (src/admin/).

import packageJson from "../package.json" with { type: "json" };
import { stringify as stringifyToml } from "smol-toml";
import { type AdminServer, startAdminServer } from "./admin/server.ts";
import { TelemetryRing } from "./admin/telemetry.ts";
import { UPSTREAM_POOL_OFF } from "./admin/upstream.ts";
import { CONFIG_EXIT_CODE, redactSecrets } from "./config/errors.ts";
import { loadConfig } from "./config/load.ts";
import { type Config, workerCount } from "./config/schema.ts";
import { fitToFileLimit, openFileLimit } from "./fd-limit.ts";
import { LIMITS } from "./limits.ts";
import { attachPool, createPoolMemory } from "./pool/index.ts";
import { assertAddressesFree, type ListenAddress, unresolvedName } from "./port-probe.ts";
import { planReload, switchableLogger } from "./reload.ts";
import { formatHostPort, parseHostPort } from "./protocol/host-port.ts";
import { hashPassword } from "./proxy/credentials.ts";
import type { ListenerInfo } from "./proxy/server.ts";
import { Supervisor } from "./supervisor.ts";
import { readUpstreamPoolCounts } from "./upstream/stats.ts";

// Kept for SIGHUP: a reload reads the config exactly as the start did (file, flags, environment).
const argv = Bun.argv.slice(2);
const result = await loadConfig(argv, process.env);

switch (result.kind) {
  case "help":
    process.stdout.write(`${result.text}\n`);
    process.exit(0);
    break;
  case "version":
    process.stdout.write(`sockpool ${packageJson.version} (bun ${Bun.version})\n`);
    process.exit(0);
    break;
  case "hash-password": {
    // The password comes on stdin (never argv, which `ps` shows); one trailing newline is dropped.
    const password = (await Bun.stdin.text()).replace(/\r?\n$/, "");
    if (password === "") {
      process.stderr.write(
        "sockpool: --hash-password: expected a password on stdin, got nothing\n",
      );
      process.exit(CONFIG_EXIT_CODE);
    }
    process.stdout.write(`${await hashPassword(password)}\n`);
    process.exit(0);
    break;
  }
  case "error":
    process.stderr.write(
      `sockpool: invalid configuration (${result.problems.length} problem${result.problems.length === 1 ? "" : "s"}):\n` +
        result.problems.map((problem) => `  ${problem}\n`).join("") +
        "Run sockpool --help for every option.\n",
    );
    process.exit(CONFIG_EXIT_CODE);
    break;
  case "config":
    if (result.check) {
      for (const warning of result.warnings)
        process.stderr.write(`sockpool: warning: ${warning}\n`);
      process.stdout.write(
        `# sockpool ${packageJson.version}: configuration valid; in effect (secrets redacted):\n\n` +
          stringifyToml(redactSecrets(result.config)),
      );
      process.exit(0);
    }
}

/** `loaded` with connections_max lowered to what the open-file limit allows, and why. */
function fitted(loaded: Config) {
  const fit = fitToFileLimit(loaded.server.connections_max, openFileLimit());
  const config =
    fit === null
      ? loaded
      : { ...loaded, server: { ...loaded.server, connections_max: fit.connectionsMax } };
  return { config, fit };
}

const { config, fit: fittedAtStart } = fitted(result.config);
// Switchable: a reload's log.level and log.format apply from the next line on.
const log = switchableLogger({ level: config.log.level, format: config.log.format });
/** The config in effect (as configured, port 0 unresolved); a reload replaces it. */
let running: Config = config;
for (const warning of result.warnings) log.warn(warning);
// The default adapts to the descriptor limit without a warning (Bun has already raised the soft
// limit to the hard one); a connections_max the operator chose and cannot have is warned about.
if (fittedAtStart !== null && result.given(["server", "connections_max"]))
  log.warn(fittedAtStart.warning);
else if (fittedAtStart !== null) {
  log.info("connections_max fitted to the open-file limit", {
    connections_max: fittedAtStart.connectionsMax,
    file_limit: openFileLimit(),
  });
}

function listenAddresses(of: Config): ListenAddress[] {
  return [
    ...(of.socks.enabled ? [{ what: "socks listen", address: of.socks.listen }] : []),
    ...of.forward.map((forward) => ({ what: "forward listen", address: forward.listen })),
    ...of.http.map((http) => ({ what: "http listen", address: http.listen })),
  ];
}

try {
  await assertAddressesFree(listenAddresses(config), config.server.share_port);
  const admin = config.admin.listen === "off" ? null : parseHostPort(config.admin.listen);
  // Bun.serve reports a name that does not resolve as EADDRINUSE: ask the resolver first.
  const unresolved = admin && (await unresolvedName("admin listen", admin.host, admin.port));
  if (unresolved) throw new Error(unresolved);
} catch (error) {
  log.error("cannot start", { error: (error as Error).message });
  process.exit(1);
}
const workers = workerCount(config.server);
const memory = createPoolMemory(
  {
    strategy: config.pool.strategy,
    slots: config.pool.slots,
    slot_bytes: config.pool.slot_bytes,
    checked: config.pool.checked,
    local_batch: config.pool.local_batch,
  },
  { log },
);
const supervisor = new Supervisor(config, memory, workers, log);
const telemetry = new TelemetryRing();
supervisor.onEvent = (event, worker) => telemetry.push(event, worker);
let stopping = false;
/** When the first SIGTERM/SIGINT arrived (performance.now()), to tell a repeat from a second one.
 *  Declared here, before the handlers are installed: a signal may come during the start. */
let firstSignalAt = 0;
let started = false;
let listening: ListenerInfo[] = [];
const reloads = { ok: 0, rejected: 0 };
let reloadWanted = false; // a SIGHUP came that no reload has served yet
let reloading = false;
let poolBackend: string = memory.backend;

// Installed before anything starts: a SIGTERM that arrives while the Workers start (or the instant
// after `ready`, before a later line would have installed it) stops gracefully instead of taking
// the default action (exit 143).
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
// Every signal an operator may send gets a handler, so none takes its default action (for SIGHUP,
// SIGUSR1 and SIGUSR2 that ends the process).
process.on("SIGHUP", () => requestReload());
// Reserved for reopening the access log (logrotate); until there is a log file to reopen, only
// logged. Whatever reopens a file later adds its own listener.
process.on("SIGUSR1", () => {
  if (process.listenerCount("SIGUSR1") === 1) log.info("SIGUSR1: nothing to reopen");
});

// Fault injection for the soak (test/soak/soak.ts), off unless SOCKPOOL_FAULT_INJECTION=1: then
// SIGUSR2 makes Worker 0 die of an uncaught error and the supervisor restarts it as after any crash.
// Without the variable SIGUSR2 is ignored with a log line.
if (process.env.SOCKPOOL_FAULT_INJECTION === "1") {
  log.warn("fault injection enabled: SIGUSR2 crashes worker 0", {
    env: "SOCKPOOL_FAULT_INJECTION",
  });
  process.on("SIGUSR2", () => {
    log.warn("fault injection: crashing worker 0", { sent: supervisor.injectCrash(0) });
  });
} else {
  process.on("SIGUSR2", () => log.info("SIGUSR2 ignored (it has no meaning here)"));
}

// The admin API starts before the Workers, so a port it cannot bind stops the start before any
// listener opens, and /readyz answers 503 until every Worker listens.
let admin: AdminServer | null = null;
if (config.admin.listen !== "off") {
  try {
    admin = startAdminServer(
      {
        config,
        version: packageJson.version,
        startedAtMs: Date.now(),
        workers: supervisor,
        telemetry,
        listeners: () => listening,
        bufferPool: {
          strategy: memory.strategy,
          backend: () => poolBackend,
          slots: memory.slots,
          slot_bytes: memory.slot_bytes,
        },
        upstreamPool: config.server.pool.enabled
          ? () => readUpstreamPoolCounts(supervisor.upstreamPool, workers)
          : UPSTREAM_POOL_OFF,
        stopping: () => stopping,
        reloads: () => reloads,
      },
      log,
    );
  } catch (error) {
    log.error("cannot start", { error: (error as Error).message });
    process.exit(1);
  }
  supervisor.pinAdminAddress(admin.address);
  log.info("admin listening", {
    address: admin.address,
    token: config.admin.token === undefined ? "none" : "required",
  });
}

try {
  const { listeners, backends } = await supervisor.start();
  listening = listeners;
  for (const listener of listeners) log.info("listening", describe(listener));
  // What the Workers attached with; "mixed" would mean some could not load the library.
  poolBackend = new Set(backends).size === 1 ? backends[0]! : "mixed";
  log.info("ready", {
    workers,
    pool_strategy: memory.strategy,
    pool_backend: poolBackend,
    pool_slots: memory.slots,
    slot_bytes: memory.slot_bytes,
    auth: config.socks.enabled ? config.socks.auth : undefined,
  });
} catch (error) {
  log.error("cannot start", { error: (error as Error).message });
  await supervisor.stop(0);
  process.exit(1);
}
started = true;
if (reloadWanted) requestReload();

// ── reload (SIGHUP) ────────────────────────────────────────────────────────────────────────────
// One at a time: a SIGHUP during a reload runs one more after it (the file may have changed
// again); a SIGHUP during start-up waits for `ready`.

function requestReload(): void {
  if (stopping) {
    log.info("SIGHUP ignored: stopping");
    return;
  }
  reloadWanted = true;
  if (!started || reloading) return;
  reloading = true;
  reloadWanted = false;
  void reload()
    .catch((error: unknown) => log.error("reload: unexpected exception", { error: String(error) }))
    .finally(() => {
      reloading = false;
      if (reloadWanted) requestReload();
    });
}

function rejectReload(problems: readonly string[]): void {
  reloads.rejected++;
  for (const problem of problems) log.error("reload rejected", { problem });
  log.error("reload rejected: the running configuration keeps serving", {
    problems: problems.length,
  });
  telemetry.push({
    kind: "config_rejected",
    level: "error",
    message:
      `reload rejected (${problems.length} problem${problems.length === 1 ? "" : "s"}): ${problems[0] ?? ""}`.slice(
        0,
        300,
      ),
    fields: { problems: problems.length },
  });
}

async function reload(): Promise<void> {
  const startedAt = performance.now();
  log.info("reloading", { signal: "SIGHUP" });
  const loaded = await loadConfig(argv, process.env);
  if (loaded.kind === "error") return rejectReload(loaded.problems);
  if (loaded.kind !== "config") return rejectReload([`unexpected ${loaded.kind} in the arguments`]);
  for (const warning of loaded.warnings) log.warn(warning);
  const { config: next, fit } = fitted(loaded.config);
  if (fit !== null && loaded.given(["server", "connections_max"])) log.warn(fit.warning);
  const plan = planReload(running, next);
  for (const key of plan.needsRestart) {
    log.warn("reload: needs a restart; the running value stays", { key });
  }
  // The addresses this reload adds must be free (or at least exist): those already bound are ours.
  const bound = new Set(listening.map((listener) => formatHostPort(listener.host, listener.port)));
  const added = listenAddresses(plan.config).filter(({ address }) => {
    const parsed = parseHostPort(address);
    return parsed === null || !bound.has(formatHostPort(parsed.host, parsed.port));
  });
  try {
    await assertAddressesFree(added, plan.config.server.share_port);
  } catch (error) {
    return rejectReload([(error as Error).message]);
  }
  let listeners: ListenerInfo[];
  try {
    listeners = await supervisor.reload(plan.config);
  } catch (error) {
    return rejectReload([(error as Error).message]);
  }
  const before = new Set(listening.map(listenerKey));
  const after = new Set(listeners.map(listenerKey));
  for (const listener of listening) {
    if (!after.has(listenerKey(listener))) log.info("stopped listening", describe(listener));
  }
  running = plan.config;
  log.switchTo({ level: running.log.level, format: running.log.format });
  for (const listener of listeners) {
    if (!before.has(listenerKey(listener))) log.info("listening", describe(listener));
  }
  listening = listeners;
  reloads.ok++;
  log.info("reloaded", {
    changed: plan.changed.length === 0 ? "nothing" : plan.changed.join(" "),
    needs_restart: plan.needsRestart.length === 0 ? undefined : plan.needsRestart.join(" "),
    duration_ms: Math.round(performance.now() - startedAt),
  });
  telemetry.push({
    kind: "config_reloaded",
    level: "info",
    message: `configuration reloaded: ${plan.changed.length} option${plan.changed.length === 1 ? "" : "s"} changed`,
    fields: {
      changed: plan.changed.join(" ").slice(0, 300),
      needs_restart: plan.needsRestart.join(" "),
    },
  });
}

function listenerKey(listener: ListenerInfo): string {
  return `${listener.kind} ${formatHostPort(listener.host, listener.port)} ${listener.target ?? ""}`;
}

function describe(listener: ListenerInfo) {
  return {
    kind: listener.kind,
    address: formatHostPort(listener.host, listener.port),
    target: listener.target,
  };
}

// ── stop (SIGTERM, SIGINT) ─────────────────────────────────────────────────────────────────────

/** Set while the drain delay runs: ends it early (a second signal). */
let endDrainDelay: (() => void) | null = null;

async function stop(signal: string): Promise<void> {
  if (stopping && performance.now() - firstSignalAt < LIMITS.signal_repeat_ms) {
    // The same signal delivered twice: Ctrl-C reaches `bun run serve` and this process alike, and
    // `bun run` forwards it. An operator's second signal comes later.
    log.debug(
      `${signal} repeated within ${LIMITS.signal_repeat_ms} ms: one signal, already stopping`,
    );
    return;
  }
  if (stopping) {
    // A second signal during the drain (or its delay): the operator does not want to wait.
    log.warn(`second ${signal} while stopping: closing every connection now`, {
      open_connections: supervisor.openConnectionCount(),
    });
    if (endDrainDelay !== null) endDrainDelay();
    else supervisor.closeNow();
    return;
  }
  stopping = true; // from now /readyz answers 503, while the Workers drain
  firstSignalAt = performance.now();
  let graceMs = running.server.shutdown_timeout_ms;
  const delayMs = running.server.drain_delay_ms;
  log.info("stopping", {
    signal,
    open_connections: supervisor.openConnectionCount(),
    grace_ms: graceMs,
    drain_delay_ms: delayMs > 0 ? delayMs : undefined,
  });
  if (delayMs > 0) {
    // The listeners keep accepting while /readyz says 503, so a load balancer's health check takes
    // this instance out of rotation before a client can find its port closed.
    const cut = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), delayMs);
      endDrainDelay = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
    endDrainDelay = null;
    if (cut) graceMs = 0; // a second signal during the delay: close everything at once
  }
  await supervisor.stop(graceMs);
  // Read once every Worker has stopped and flushed its cache, so a slot not free now was lost and a
  // place still counted under connections_max was never given back (the soak checks both).
  const pool = attachPool(memory).stats();
  log.info("stopped", {
    open_connections: supervisor.openConnectionCount(),
    pool_slots: pool.slots,
    pool_free: pool.free,
  });
  await admin?.stop();
  process.exit(0);
}
