// Runs a Bun script in a child process and collects what it printed, so a crash (even a segfault)
// fails one test instead of the whole run.

export interface Finished {
  code: number;
  stdout: string;
  stderr: string;
}

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
  const [stdout, stderr, code] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.exited,
  ]);
  return { code, stdout, stderr };
}
