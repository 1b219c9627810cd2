// Bounded waits that fail naming what they waited for. Not a fixed sleep for readiness.

/** How long any single wait may take before the test fails with a message. */
export const DEADLINE_MS = 10_000;

export class DeadlineError extends Error {
  constructor(what: string, ms: number) {
    super(`timed out after ${ms} ms waiting for ${what}`);
    this.name = "DeadlineError";
  }
}

/** Rejects with a DeadlineError naming `what` when `promise` takes longer than `ms`. */
export function withDeadline<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Polls `condition` every `intervalMs` until it holds; fails after `timeoutMs`. */
export async function waitFor(
  condition: () => boolean,
  what: string | (() => string),
  timeoutMs = DEADLINE_MS,
  intervalMs = 10,
): Promise<void> {
  const started = performance.now();
  while (!condition()) {
    if (performance.now() - started > timeoutMs) {
      throw new DeadlineError(typeof what === "string" ? what : what(), timeoutMs);
    }
    await Bun.sleep(intervalMs);
  }
}
