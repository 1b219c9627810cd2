// The project's test runner: Bun's tests and Zig's tests in one run, closing with the one line CI
// reads: `N passed, N failed`. With --check it first runs typecheck, lint and format check, and a
// failing check counts as a failure there too. Not a test framework: it only runs the two and counts.
//
//   bun test/run.ts [--check] [bun test filters…]

export {};

const BUN_TEST_TIMEOUT_MS = 120_000; // bun test ignores bunfig's [test].timeout in 1.4.5

interface Outcome {
  passed: number;
  failed: number;
}

/** Runs a command, streaming its output through, and returns its exit code and combined text. */
async function run(command: string[]): Promise<{ code: number; text: string }> {
  const child = Bun.spawn(command, { stdout: "pipe", stderr: "pipe", env: process.env });
  let text = "";
  const pump = async (
    stream: ReadableStream<Uint8Array>,
    sink: NodeJS.WriteStream,
  ): Promise<void> => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      sink.write(chunk);
      text += decoder.decode(chunk, { stream: true });
    }
  };
  await Promise.all([pump(child.stdout, process.stdout), pump(child.stderr, process.stderr)]);
  return { code: await child.exited, text };
}

function count(text: string, pattern: RegExp): number | null {
  const match = text.match(pattern);
  return match ? Number(match[1]) : null;
}

async function bunTests(filters: string[]): Promise<Outcome> {
  const { code, text } = await run(["bun", "test", `--timeout=${BUN_TEST_TIMEOUT_MS}`, ...filters]);
  // Bun prints its summary on stderr as " 12 pass" / " 0 fail".
  const passed = count(text, /^\s*(\d+) pass\s*$/m);
  const failed = count(text, /^\s*(\d+) fail\s*$/m);
  if (passed === null || failed === null) {
    console.error(
      `run: could not read bun test's summary (exit ${code}); counting it as one failure`,
    );
    return { passed: passed ?? 0, failed: (failed ?? 0) + 1 };
  }
  return { passed, failed: code !== 0 && failed === 0 ? 1 : failed };
}

async function zigTests(): Promise<Outcome> {
  const { code, text } = await run(["bash", ".ci/zig.sh", "build", "test", "--summary", "all"]);
  // Zig ends with e.g. "Build Summary: 3/3 steps succeeded; 9/9 tests passed" (plus "; N failed").
  const match = text.match(/(\d+)\/(\d+) tests passed(?:; (\d+) failed)?/);
  if (!match) {
    console.error(
      `run: could not read zig build test's summary (exit ${code}); counting it as one failure`,
    );
    return { passed: 0, failed: 1 };
  }
  const passed = Number(match[1]);
  const failed = Number(match[3] ?? 0) || Number(match[2]) - passed;
  return { passed, failed: code !== 0 && failed === 0 ? 1 : failed };
}

async function checks(): Promise<number> {
  let failed = 0;
  for (const [name, command] of [
    ["typecheck", ["bun", "run", "typecheck"]],
    ["lint", ["bun", "run", "lint"]],
    ["format", ["bun", "run", "format:check"]],
  ] as const) {
    const { code } = await run([...command]);
    console.log(`check ${name}: ${code === 0 ? "ok" : `FAILED (exit ${code})`}`);
    if (code !== 0) failed++;
  }
  return failed;
}

const args = process.argv.slice(2);
const withChecks = args.includes("--check");
const filters = args.filter((arg) => arg !== "--check");

const checkFailures = withChecks ? await checks() : 0;
const bun = await bunTests(filters);
const zig = filters.length === 0 ? await zigTests() : { passed: 0, failed: 0 };
console.log(
  `bun: ${bun.passed} passed, ${bun.failed} failed; zig: ${zig.passed} passed, ${zig.failed} failed`,
);
const passed = bun.passed + zig.passed;
const failed = bun.failed + zig.failed + checkFailures;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
