// Invariants: a condition the code relies on, checked where it is stated. Not input validation:
// bad input from users gets a ConfigError or a ProtocolError, never an assertion failure.

/** An invariant of the program does not hold. Always a bug (or an impossible build), never bad input. */
export class AssertionError extends Error {
  constructor(name: string) {
    super(`invariant broken: ${name}`);
    this.name = "AssertionError";
  }
}

/** Crashes loudly, naming the invariant, when `condition` is false. */
export function assert(condition: boolean, name: string): asserts condition {
  if (!condition) throw new AssertionError(name);
}
