// Child processes for tests: run a Bun script, collect a child's output, find a tool on PATH. Not the proxy (proxy-process.ts).

export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bun script ...args` to completion, so a crash (even a segfault) fails one test. */
export async function runBun(
  script: URL,
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<Finished> {
  const child = Bun.spawn(["bun", script.pathname, ...args], {
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  return await collect(child);
}

/** Waits for a piped child to exit and returns its exit code and everything it printed. */
export async function collect(child: {
  stdout: ReadableStream<Uint8Array>;
  stderr: ReadableStream<Uint8Array>;
  exited: Promise<number>;
}): Promise<Finished> {
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, stderr };
}

/** A tool on PATH, or a failure that says how to install it (CI installs all of them). */
export function requireTool(name: string): string {
  const path = Bun.which(name);
  if (path === null) {
    throw new Error(
      `${name} not found on PATH: the integration tests need it. Install it with ` +
        `".ci/setup.sh --test-tools" (curl, proxychains4, iperf3, promtool, prometheus, chromium, haproxy) or your package manager.`,
    );
  }
  return path;
}
