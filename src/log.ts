// The logger: levelled, one line per event, text or JSON, written to stderr (with syslog priority
// prefixes when stderr is the systemd journal).
// Not a log shipper: no files, no rotation; run under systemd or a supervisor for that.

import { fstatSync } from "node:fs";

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line (e.g. `{ worker: 1 }`). */
  child(fields: LogFields): Logger;
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Where lines go; stderr by default. Tests pass a collector. */
  write?: (line: string) => void;
  /** Prefix each line with its syslog priority (`<6>` for info…), as journald reads it. Default:
   *  when stderr is the journal (journalOnStderr()). */
  syslogPriority?: boolean;
}

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
/** syslog(3) priorities: LOG_DEBUG 7, LOG_INFO 6, LOG_WARNING 4, LOG_ERR 3. */
const SYSLOG_PRIORITY: Record<LogLevel, string> = {
  debug: "<7>",
  info: "<6>",
  warn: "<4>",
  error: "<3>",
};

/**
 * Whether stderr is connected to the systemd journal: systemd sets JOURNAL_STREAM to the
 * "device:inode" of the stream it gave the service, and a shell started from the service (or
 * anything that redirects stderr) no longer matches it.
 */
export function journalOnStderr(
  env: Record<string, string | undefined> = process.env,
  stat: () => { dev: number; ino: number } = () => fstatSync(2),
): boolean {
  const stream = env.JOURNAL_STREAM;
  if (!stream) return false;
  try {
    const { dev, ino } = stat();
    return stream === `${dev}:${ino}`;
  } catch {
    return false; // stderr closed: nothing to match
  }
}

const JOURNAL = journalOnStderr();

function writeStderr(line: string): void {
  process.stderr.write(line);
}

// Characters a client can put into a logged value (a username, a domain) that must never reach a
// terminal or a log viewer raw: C0 controls (ESC starts terminal escape sequences, BEL, CR and LF
// forge lines), DEL, C1 controls (NEL, CSI), the line and paragraph separators, and the bidi
// overrides that reorder what a reader sees. JSON.stringify escapes only C0, so both formats run
// this after it. Each becomes a \uXXXX escape, so the original is still recoverable.
// biome-ignore lint/suspicious/noControlCharactersInRegex: finding control characters is its job
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;
const HAS_UNSAFE = new RegExp(UNSAFE.source); // no g flag: test() keeps no state

function escapeUnsafe(text: string): string {
  return text.replace(UNSAFE, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** `key=value`, quoting values that contain spaces, quotes, `=` or unsafe characters (escaped as in
 *  JSON), so a line stays machine-splittable and one line. */
function textValue(value: string | number | boolean | null): string {
  const text = String(value);
  const quote = text === "" || /[\s"=\\]/.test(text) || HAS_UNSAFE.test(text);
  return quote ? escapeUnsafe(JSON.stringify(text)) : text;
}

function formatLine(
  format: LogFormat,
  level: LogLevel,
  message: string,
  fields: LogFields,
): string {
  const time = new Date().toISOString();
  if (format === "json") {
    return `${escapeUnsafe(JSON.stringify({ time, level, msg: message, ...fields }))}\n`;
  }
  let line = `${time} ${level.toUpperCase().padEnd(5)} ${message}`;
  for (const key in fields) {
    const value = fields[key];
    if (value !== undefined) line += ` ${key}=${textValue(value)}`;
  }
  return `${line}\n`;
}

export function createLogger(options: LoggerOptions, bound: LogFields = {}): Logger {
  const threshold = RANK[options.level];
  const write = options.write ?? writeStderr;
  const priority = options.syslogPriority ?? (options.write === undefined && JOURNAL);
  const emit = (level: LogLevel, message: string, fields?: LogFields): void => {
    if (RANK[level] < threshold) return;
    const line = formatLine(
      options.format,
      level,
      message,
      fields ? { ...bound, ...fields } : bound,
    );
    write(priority ? SYSLOG_PRIORITY[level] + line : line);
  };
  return {
    debug: (message, fields) => emit("debug", message, fields),
    info: (message, fields) => emit("info", message, fields),
    warn: (message, fields) => emit("warn", message, fields),
    error: (message, fields) => emit("error", message, fields),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
    enabled: (level) => RANK[level] >= threshold,
  };
}
