// Property-based fuzzing (fast-check) of Socks5Handshake fed the way the pipeline feeds it.
// Not the decoders' own properties (fuzz.test.ts) and not exact byte vectors (socks-handshake.test.ts).
//
// Four properties, FUZZ_RUNS cases each (fuzz-runner.ts): without auth and with auth, a mutated
// handshake split into random reads gives the same steps as the whole stream; arbitrary sequences
// of messages and junk never make it throw; the password the check sees never shows in a step.

import { expect, test } from "bun:test";
import fc from "fast-check";
import { encodeAuthRequest } from "../../src/protocol/auth.ts";
import {
  AUTH_FIELD_BYTES_MAX,
  AUTH_REQUEST_BYTES_MAX,
  Command,
  type CommandByte,
  Method,
  PORT_MAX,
  REQUEST_BYTES_MAX,
} from "../../src/protocol/constants.ts";
import { ProtocolError } from "../../src/protocol/errors.ts";
import { handshakeFailure } from "../../src/protocol/failures.ts";
import type { FrontStep } from "../../src/protocol/front.ts";
import { encodeGreeting } from "../../src/protocol/greeting.ts";
import { encodeReply, encodeRequest } from "../../src/protocol/request.ts";
import { type PasswordCheck, Socks5Handshake } from "../../src/protocol/socks-handshake.ts";
import { concat, fromHex, toHex } from "../support/bytes.ts";
import {
  address,
  type Chunking,
  chunk,
  chunking,
  fieldBytes,
  fieldText,
  mutate,
  mutations,
  port,
  randomBytes,
  validAuthRequest,
  validGreeting,
  validRequest,
} from "./fuzz-arbitraries.ts";
import { COVERAGE_RUNS, fuzz } from "./fuzz-runner.ts";

const FILE = "test/protocol/fuzz-handshake.test.ts";

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

/** A step as two feedings must agree on it: everything but object identity. */
type StepView =
  | { kind: "reply"; consumed: number; bytes: string }
  | { kind: "dial"; consumed: number; host: string; port: number }
  | {
      kind: "refuse";
      code: Refusal["code"];
      reply: string | null;
      error: string | null;
      user: string | null;
    };

type Refusal = Extract<FrontStep, { kind: "refuse" }>;

interface Trace {
  steps: StepView[];
  /** After a dial: what the pipeline hands the relay as early data (hex), never dropped. */
  early: string | null;
  /** When the stream ends mid-handshake: the partial message held for the next read (hex). */
  held: string;
}

const EMPTY = new Uint8Array(0);

/**
 * Feeds `reads` the way src/proxy/connection.ts handshake() does: a need-more keeps the whole
 * input (the held prefix plus this read) and the next read is appended to it; a reply or dial
 * consumes its message and the rest of the read is fed on. Stops at dial or refuse, so the
 * documented "feed() after the request was read" assertion is never hit. Every raw step goes to
 * `seen`, for the password check.
 */
function drive(
  handshake: Socks5Handshake,
  auth: boolean,
  reads: Uint8Array[],
  seen: FrontStep[] = [],
): Trace {
  const steps: StepView[] = [];
  let held = EMPTY;
  for (let r = 0; r < reads.length; r++) {
    let rest = reads[r];
    while (rest.length > 0) {
      const input = held.length > 0 ? concat(held, rest) : rest;
      const step = handshake.feed(input);
      seen.push(step);
      if (step.kind === "need-more") {
        // The pipeline holds it in one pool slot, sized for the largest handshake message.
        check(input.length < AUTH_REQUEST_BYTES_MAX, `held ${input.length} bytes`);
        held = input.slice();
        break;
      }
      const heldBefore = held.length;
      held = EMPTY;
      const view = viewOf(step);
      checkStep(auth, steps, view);
      steps.push(view);
      if (step.kind === "refuse") return { steps, early: null, held: "" };
      // The message ends inside this read: past what was held, within what arrived.
      const fromRest = step.consumed - heldBefore;
      check(
        fromRest >= 1 && fromRest <= rest.length,
        `consumed ${step.consumed} with ${heldBefore} held and ${rest.length} new`,
      );
      rest = rest.subarray(fromRest);
      if (step.kind === "dial") {
        return { steps, early: toHex(concat(rest, ...reads.slice(r + 1))), held: "" };
      }
    }
  }
  return { steps, early: null, held: toHex(held) };
}

function viewOf(step: Exclude<FrontStep, { kind: "need-more" }>): StepView {
  switch (step.kind) {
    case "reply":
      return { kind: "reply", consumed: step.consumed, bytes: toHex(step.bytes) };
    case "dial":
      return { kind: "dial", consumed: step.consumed, ...step.request };
    case "refuse":
      if (step.error !== undefined) {
        check(step.error instanceof ProtocolError, "refusal error is not a ProtocolError");
        check(step.error.code === step.code, `error ${step.error.code} refused as ${step.code}`);
      }
      return {
        kind: "refuse",
        code: step.code,
        reply: step.reply === null ? null : toHex(step.reply),
        error: step.error?.code ?? null,
        user: step.username ?? null,
      };
    case "login":
      throw new Error("the fuzzed checks are synchronous: no login step expected");
    case "associate":
      throw new Error("the fuzzed handshake does not serve UDP: no associate step expected");
  }
}

/**
 * The step is the one the protocol allows after `before`: greeting → 05 00 | 05 02, then (with
 * auth) login → 01 00, then the request → dial; a refusal at any point, framed as the message of
 * that phase with the failure table's reply byte.
 */
function checkStep(auth: boolean, before: StepView[], step: StepView): void {
  const phases = auth ? ["greeting", "auth", "request"] : ["greeting", "request"];
  const phase = phases[before.length];
  check(phase !== undefined, `a step after the handshake: ${JSON.stringify(step)}`);
  switch (step.kind) {
    case "reply": {
      const expected = phase === "greeting" ? (auth ? "05 02" : "05 00") : "01 00";
      check(phase !== "request" && step.bytes === expected, `${phase} reply ${step.bytes}`);
      check(step.consumed >= 1, `consumed ${step.consumed}`);
      break;
    }
    case "dial":
      check(phase === "request", `dial in phase ${phase}`);
      check(step.consumed >= 1 && step.consumed <= REQUEST_BYTES_MAX, `consumed ${step.consumed}`);
      check(step.host.length >= 1 && step.port >= 0 && step.port <= PORT_MAX, "dial target");
      break;
    case "refuse": {
      const { reply } = handshakeFailure(step.code); // the one table
      const framed =
        reply === null
          ? null
          : phase === "greeting"
            ? `05 ${toHex(Uint8Array.of(reply))}`
            : phase === "auth"
              ? `01 ${toHex(Uint8Array.of(reply))}`
              : toHex(encodeReply(reply));
      check(step.reply === framed, `${phase} refused ${step.code} with ${step.reply}`);
      // A name only on a failed login, and then only a configured user's (see loginCheck).
      check(step.user === null || step.code === "AUTH_FAILED", "username on the wrong refusal");
      break;
    }
  }
}

const bytesEqual = (a: Uint8Array, b: Uint8Array) => Bun.deepEquals(a, b, true);

interface Login {
  username: string;
  password: Uint8Array;
}

/** A handshake a client could send, and what the server must make of it when unmutated. */
interface Script {
  /** The configured login; null: no authentication. */
  login: Login | null;
  stream: Uint8Array;
  mutated: boolean;
  /** For an unmutated stream: the dial it must end in, or null for a refusal. */
  dial: { host: string; port: number; early: string } | null;
}

const withCommand = fc.oneof(
  { weight: 4, arbitrary: fc.constant<CommandByte>(Command.CONNECT) },
  fc.constantFrom<CommandByte>(Command.BIND, Command.UDP_ASSOCIATE),
);

/**
 * A greeting (offering the configured method or not), with auth a login (right or wrong), a
 * request, early data; then, half the time, up to four byte edits of the whole.
 */
function script(auth: boolean, password: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Script> {
  const wanted = auth ? Method.USERNAME_PASSWORD : Method.NO_AUTH;
  const login = fc.record({ username: fieldText(AUTH_FIELD_BYTES_MAX), password });
  return fc
    .record({
      others: fc.uint8Array({ maxLength: 6 }),
      offered: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, fc.constant(false)),
      at: fc.nat(),
      configured: login,
      // null (3 in 4): send the configured login; else another one, nearly always wrong.
      sent: fc.oneof({ weight: 3, arbitrary: fc.constant(null) }, login),
      command: withCommand,
      address,
      port,
      early: fc.uint8Array({ maxLength: 24 }),
      edits: fc.option(mutations, { freq: 2 }),
    })
    .map((s) => {
      const methods = Array.from(s.others).filter((method) => method !== wanted);
      if (s.offered) methods.splice(s.at % (methods.length + 1), 0, wanted);
      if (methods.length === 0) methods.push(Method.NO_ACCEPTABLE);
      const sent = s.sent ?? s.configured;
      const parts = [encodeGreeting(methods)];
      if (auth && s.offered) parts.push(encodeAuthRequest(sent.username, sent.password));
      parts.push(encodeRequest({ command: s.command, address: s.address, port: s.port }), s.early);
      const loginOk =
        !auth ||
        (sent.username === s.configured.username &&
          bytesEqual(sent.password, s.configured.password));
      const dials = s.offered && loginOk && s.command === Command.CONNECT;
      return {
        login: auth ? s.configured : null,
        stream: mutate(concat(...parts), s.edits ?? []),
        mutated: (s.edits ?? []).length > 0,
        dial: dials ? { host: s.address.host, port: s.port, early: toHex(s.early) } : null,
      };
    });
}

interface Outcomes {
  dial: number;
  refuse: number;
  incomplete: number;
}

/** The password check for one configured user, as src/proxy/credentials.ts answers. */
function loginCheck(login: Login): PasswordCheck {
  return (username, password) => {
    if (username !== login.username) return "unknown-user";
    return bytesEqual(password, login.password) ? "ok" : "wrong-password";
  };
}

/** The check every chunking property makes: same trace whole and in reads, and the oracle. */
function sameStepsHoweverSplit(
  { login, stream, mutated, dial }: Script,
  split: Chunking,
  outcomes: Outcomes,
): void {
  const checkPassword = login === null ? null : loginCheck(login);
  const auth = login !== null;
  const whole = drive(new Socks5Handshake(checkPassword), auth, [stream]);
  const reads = chunk(stream, split);
  const chunked = drive(new Socks5Handshake(checkPassword), auth, reads);
  check(
    Bun.deepEquals(chunked, whole, true),
    `in ${reads.length} reads: ${JSON.stringify(chunked)}\nwhole: ${JSON.stringify(whole)}`,
  );
  const last = whole.steps.at(-1);
  if (last?.kind === "dial") outcomes.dial++;
  else if (last?.kind === "refuse") outcomes.refuse++;
  else outcomes.incomplete++;
  if (!mutated) {
    // An unmutated handshake always reaches a decision, and the right one.
    const expected = dial === null ? "refuse" : "dial";
    check(last?.kind === expected, `expected ${expected}, got ${JSON.stringify(whole)}`);
    if (last?.kind === "dial" && dial !== null) {
      check(last.host === dial.host && last.port === dial.port, `dialled ${JSON.stringify(last)}`);
      check(whole.early === dial.early, `early data ${whole.early}, sent ${dial.early}`);
    }
  }
}

for (const auth of [false, true]) {
  const name = `handshake ${auth ? "with" : "without"} auth: same steps however split`;
  test(name, () => {
    const outcomes: Outcomes = { dial: 0, refuse: 0, incomplete: 0 };
    const runs = fuzz(
      FILE,
      name,
      fc.tuple(script(auth, fieldBytes(0, AUTH_FIELD_BYTES_MAX)), chunking),
      ([s, split]) => sameStepsHoweverSplit(s, split, outcomes),
    );
    console.log(`  ${JSON.stringify(outcomes)}`);
    if (runs >= COVERAGE_RUNS) {
      expect(outcomes.dial).toBeGreaterThan(0);
      expect(outcomes.refuse).toBeGreaterThan(0);
      expect(outcomes.incomplete).toBeGreaterThan(0);
    }
  });
}

// Any sequence: whole messages of every phase in any order, random bytes, edits of the lot.
const segment = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom("05 01 00", "05 01 02", "05 02 00 02").map(fromHex) },
  validGreeting.map((v) => v.wire),
  validAuthRequest.map((v) => v.wire),
  { weight: 2, arbitrary: validRequest.map((v) => v.wire) },
  randomBytes(48, [[0x05, 0x01]]),
);
const anySequence = fc
  .tuple(fc.array(segment, { maxLength: 5 }), mutations)
  .map(([segments, edits]) => mutate(concat(...segments), edits));

const FEED_AFTER_END = "assert: Socks5Handshake.feed() after the request was read";

test("handshake on any sequence of messages and junk: never throws, same steps however split", () => {
  const outcomes: Outcomes = { dial: 0, refuse: 0, incomplete: 0 };
  fuzz(
    FILE,
    "handshake on any sequence",
    fc.tuple(anySequence, fc.boolean(), fc.boolean(), chunking),
    ([stream, auth, accept, split]) => {
      const checkPassword: PasswordCheck | null = auth
        ? () => (accept ? "ok" : "wrong-password")
        : null;
      const whole = new Socks5Handshake(checkPassword);
      const trace = drive(whole, auth, [stream]);
      const chunked = drive(new Socks5Handshake(checkPassword), auth, chunk(stream, split));
      check(Bun.deepEquals(chunked, trace, true), "a split stream gave other steps");
      // Past dial or refuse, feeding is a bug and says so (the driver never does it).
      const last = trace.steps.at(-1);
      if (last !== undefined && last.kind !== "reply") {
        expect(() => whole.feed(stream)).toThrow(FEED_AFTER_END);
      }
      outcomes[last?.kind === "dial" || last?.kind === "refuse" ? last.kind : "incomplete"]++;
    },
  );
  console.log(`  ${JSON.stringify(outcomes)}`);
});

// Passwords that cannot show by accident: text behind a marker no step contains otherwise. A
// short or random password could match a step's own text (an indent, "0x01"), so only these are
// looked for as text; every password is looked for as bytes.
const MARK = "pw\u00a7";
const markedPassword = fieldText(64).map((text) => new TextEncoder().encode(`${MARK}${text}`));
const lossyUtf8 = new TextDecoder();

/** Every string a step could be shown as: JSON, Bun.inspect, and any error's message and stack. */
function renderings(step: FrontStep): string[] {
  const out = [JSON.stringify(step), Bun.inspect(step, { depth: 10 })];
  if (step.kind === "refuse") {
    out.push(step.username ?? "", step.error?.message ?? "", step.error?.stack ?? "");
    out.push(JSON.stringify(step.error ?? null), Bun.inspect(step.error ?? null));
  }
  return out;
}

test("handshake never shows the password it checks", () => {
  fuzz(
    FILE,
    "handshake never shows the password",
    fc.tuple(script(true, fc.oneof(markedPassword, fieldBytes(0, AUTH_FIELD_BYTES_MAX))), chunking),
    ([{ login, stream }, split]) => {
      check(login !== null, "a script with auth has a login");
      const checked: Login[] = [];
      const verify = loginCheck(login);
      const checkPassword: PasswordCheck = (username, password) => {
        checked.push({ username, password });
        return verify(username, password);
      };
      const seen: FrontStep[] = [];
      drive(new Socks5Handshake(checkPassword), true, [stream], seen);
      drive(new Socks5Handshake(checkPassword), true, chunk(stream, split), seen);
      for (const { username, password } of checked) {
        for (const step of seen) {
          // Not even as the same bytes: no step carries the password's buffer.
          for (const value of Object.values(step)) {
            check(
              !(value instanceof Uint8Array && value.buffer === password.buffer),
              "a step holds the password's bytes",
            );
          }
        }
        const text = lossyUtf8.decode(password);
        // The username is logged by design; a mutated stream can move password bytes into it.
        if (!text.startsWith(MARK) || username.includes(text)) continue;
        for (const step of seen) {
          for (const shown of renderings(step)) {
            check(!shown.includes(text), `the password ${JSON.stringify(text)} shows in ${shown}`);
          }
        }
      }
    },
  );
});
