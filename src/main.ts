#!/usr/bin/env bun
// sockpool's entry point: config → pool memory → the admin API → supervised Workers, and a graceful
// stop on SIGTERM/SIGINT. Not the proxy itself (src/proxy/, run inside each Worker by src/worker.ts)
// nor the admin API's answers (src/admin/).

import packageJson from "../package.json" with { type: "json" };
import { stringify as stringifyToml } from "smol-toml";
import { type AdminServer, startAdminServer } from "./admin/server.ts";
import { TelemetryRing } from "./admin/telemetry.ts";
import { UPSTREAM_POOL_OFF } from "./admin/upstream.ts";
import { CONFIG_EXIT_CODE, redactSecrets } from "./config/errors.ts";
import { loadConfig } from "./config/load.ts";
import { workerCount } from "./config/schema.ts";
import { fitToFileLimit, openFileLimit } from "./fd-limit.ts";
import { createLogger } from "./log.ts";
import { attachPool, createPoolMemory } from "./pool/index.ts";
import { assertAddressesFree } from "./port-probe.ts";
import { formatHostPort } from "./protocol/host-port.ts";
import { hashPassword } from "./proxy/credentials.ts";
import type { ListenerInfo } from "./proxy/server.ts";
import { Supervisor } from "./supervisor.ts";
import { readUpstreamPoolCounts } from "./upstream/stats.ts";

const result = await loadConfig(Bun.argv.slice(2), process.env);

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

const fitted = fitToFileLimit(result.config.server.connections_max, openFileLimit());
const config =
  fitted === null
    ? result.config
    : {
        ...result.config,
        server: { ...result.config.server, connections_max: fitted.connectionsMax },
      };
const log = createLogger({ level: config.log.level, format: config.log.format });
for (const warning of result.warnings) log.warn(warning);
// The default adapts to the descriptor limit without a warning (Bun has already raised the soft
// limit to the hard one); a connections_max the operator chose and cannot have is warned about.
if (fitted !== null && result.given(["server", "connections_max"])) log.warn(fitted.warning);
else if (fitted !== null) {
  log.info("connections_max fitted to the open-file limit", {
    connections_max: fitted.connectionsMax,
    file_limit: openFileLimit(),
  });
}
if (!config.server.share_port) {
  const addresses = [
    ...(config.socks.enabled ? [config.socks.listen] : []),
    ...config.forward.map((forward) => forward.listen),
    ...config.http.map((http) => http.listen),
  ];
  try {
    assertAddressesFree(addresses);
  } catch (error) {
    log.error("cannot start", { error: (error as Error).message });
    process.exit(1);
  }
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
let listening: ListenerInfo[] = [];
let poolBackend: string = memory.backend;

// Installed before anything starts: a SIGTERM that arrives while the Workers start (or the instant
// after `ready`, before a later line would have installed it) stops gracefully instead of taking
// the default action (exit 143).
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));

// Fault injection for the soak (test/soak/soak.ts), off unless SOCKPOOL_FAULT_INJECTION=1: then
// SIGUSR2 makes Worker 0 die of an uncaught error and the supervisor restarts it as after any crash.
// Without the variable no handler is installed, and SIGUSR2 keeps its default action: Bun, like
// Node, then ends the process (exit 140, "User defined signal 2").
if (process.env.SOCKPOOL_FAULT_INJECTION === "1") {
  log.warn("fault injection enabled: SIGUSR2 crashes worker 0", {
    env: "SOCKPOOL_FAULT_INJECTION",
  });
  process.on("SIGUSR2", () => {
    log.warn("fault injection: crashing worker 0", { sent: supervisor.injectCrash(0) });
  });
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
  for (const listener of listeners) {
    log.info("listening", {
      kind: listener.kind,
      address: formatHostPort(listener.host, listener.port),
      target: listener.target,
    });
  }
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

async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true; // from now /readyz answers 503, while the Workers drain
  const graceMs = config.server.shutdown_timeout_ms;
  log.info("stopping", {
    signal,
    open_connections: supervisor.openConnectionCount(),
    grace_ms: graceMs,
  });
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
