// What a reload (SIGHUP) may change: the list of options that need a restart, the plan that keeps
// their running values, the names of what changed, and a logger whose level and format can be
// swapped in place. Not the reload itself: main.ts re-reads the config, the supervisor hands it to
// every Worker, and each Worker's ProxyServer applies it to new connections (src/proxy/server.ts).

import type { Config } from "./config/schema.ts";
import { createLogger, type LogFields, type Logger, type LoggerOptions } from "./log.ts";

/**
 * Options a running process cannot take without a restart, with the reason. A reload that changes
 * one logs "needs a restart" and keeps the running value; everything else applies to new
 * connections.
 */
export const RESTART_ONLY: readonly { key: string; why: string }[] = [
  { key: "server.workers", why: "the Workers and their shared memory are made at start" },
  { key: "server.pool", why: "the upstream pool's shared memory is sized at start" },
  { key: "pool.strategy", why: "the buffer pool's free list is built at start" },
  { key: "pool.slots", why: "the buffer pool's shared memory is sized at start" },
  { key: "pool.slot_bytes", why: "the buffer pool's shared memory is sized at start" },
  { key: "pool.checked", why: "the buffer pool's owner flags are made at start" },
  { key: "pool.local_batch", why: "the buffer pool's per-Worker caches are made at start" },
  { key: "admin.listen", why: "the admin API is bound at start" },
  { key: "admin.token", why: "the admin API is bound at start" },
];

export interface ReloadPlan {
  /** The config to apply: the new one, with every restart-only option at its running value. */
  readonly config: Config;
  /** Dotted paths of the options that change (arrays such as `forward` count as one). */
  readonly changed: string[];
  /** Restart-only options whose new value was set aside. */
  readonly needsRestart: string[];
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Dotted paths where `before` and `after` differ; arrays and scalars compare whole. */
export function changedPaths(before: unknown, after: unknown, prefix = ""): string[] {
  if (isTable(before) && isTable(after)) {
    const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
    return [...keys].flatMap((key) =>
      changedPaths(before[key], after[key], prefix === "" ? key : `${prefix}.${key}`),
    );
  }
  return JSON.stringify(before) === JSON.stringify(after) ? [] : [prefix];
}

function isUnder(path: string, key: string): boolean {
  return path === key || path.startsWith(`${key}.`);
}

function getAt(root: unknown, path: readonly string[]): unknown {
  let value = root;
  for (const key of path) value = isTable(value) ? value[key] : undefined;
  return value;
}

/** `root` with the value at `path` replaced (copies along the path, shares the rest). */
function setAt(root: Table, path: readonly string[], value: unknown): Table {
  const [head, ...rest] = path;
  if (head === undefined) return root;
  const child = root[head];
  return {
    ...root,
    [head]: rest.length === 0 ? value : setAt(isTable(child) ? child : {}, rest, value),
  };
}

/** The reload from `running` to `next`: what changes, and what waits for a restart. */
export function planReload(running: Config, next: Config): ReloadPlan {
  let config = next as unknown as Table;
  const needsRestart: string[] = [];
  for (const { key } of RESTART_ONLY) {
    const path = key.split(".");
    if (changedPaths(getAt(running, path), getAt(next, path)).length === 0) continue;
    needsRestart.push(key);
    config = setAt(config, path, getAt(running, path));
  }
  const changed = changedPaths(running, config).filter(
    (path) => !needsRestart.some((key) => isUnder(path, key)),
  );
  return { config: config as unknown as Config, changed, needsRestart };
}

/** A logger whose options can be replaced (a reload's log.level and log.format); children made
 *  from it follow the replacement too. */
export interface SwitchableLogger extends Logger {
  switchTo(options: LoggerOptions): void;
}

export function switchableLogger(options: LoggerOptions, bound: LogFields = {}): SwitchableLogger {
  let current = createLogger(options, bound);
  let generation = 0;
  const childOf = (fields: LogFields): Logger => {
    let made = current.child(fields);
    let madeAt = generation;
    const target = () => {
      if (madeAt !== generation) {
        made = current.child(fields);
        madeAt = generation;
      }
      return made;
    };
    return forwarding(target, fields);
  };
  const forwarding = (target: () => Logger, fieldsSoFar: LogFields): Logger => ({
    debug: (message, fields) => target().debug(message, fields),
    info: (message, fields) => target().info(message, fields),
    warn: (message, fields) => target().warn(message, fields),
    error: (message, fields) => target().error(message, fields),
    enabled: (level) => target().enabled(level),
    child: (fields) => childOf({ ...fieldsSoFar, ...fields }),
  });
  return {
    ...forwarding(() => current, {}),
    switchTo(next) {
      current = createLogger(next, bound);
      generation++;
    },
  };
}
