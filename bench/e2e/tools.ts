// The external tools the e2e benchmark drives (iperf3, proxychains4, danted, microsocks, haproxy):
// finding them (Debian puts some in /usr/sbin), their versions for the report, and the packages
// .ci/setup.sh --bench-tools installs. Not their use: iperf.ts and peers.ts run them.

/** The Debian packages the benchmark uses, for .ci/setup.sh --bench-tools. */
export const BENCH_PACKAGES = [
  "iperf3",
  "proxychains4",
  "dante-server",
  "microsocks",
  "haproxy",
] as const;

/** Finds a tool on PATH, or fails with how to install it. */
export function requireTool(name: string, hint: string): string {
  const found = Bun.which(name);
  if (found === null) throw new Error(`${name} not found on PATH; ${hint}`);
  return found;
}

export function debianVersion(pkg: string): string | null {
  // "dante-server\t1.4.2+dfsg-7+b8"
  const result = Bun.spawnSync(["dpkg-query", "-W", pkg], { stdout: "pipe", stderr: "ignore" });
  const text = result.stdout.toString().trim().split("\t")[1] ?? "";
  return result.exitCode === 0 && text !== "" ? text : null;
}

/** "1.4.2+dfsg-7+b8" → "1.4.2"; "2.6.12-1+deb12u4" → "2.6.12". */
export function upstreamVersion(debian: string | null): string {
  return debian === null ? "?" : debian.replace(/^\d+:/, "").replace(/[+~-].*$/, "");
}

/** A binary on PATH, or in /usr/sbin (where Debian puts danted and haproxy; not on every PATH). */
export function findBinary(binary: string): string | null {
  return Bun.which(binary) ?? Bun.which(binary, { PATH: "/usr/local/sbin:/usr/sbin:/sbin" });
}

export function missingBinary(binary: string, pkg: string): string | null {
  return findBinary(binary) === null
    ? `${binary} not found; install it with: apt-get install -y ${pkg}`
    : null;
}

/** The version a tool prints, matched by `pattern`'s first group; null when it cannot say. */
export function toolVersion(argv: string[], pattern: RegExp): string | null {
  try {
    const result = Bun.spawnSync(argv, { stdout: "pipe", stderr: "pipe" });
    const text = `${result.stdout.toString()}${result.stderr.toString()}`;
    return text.match(pattern)?.[1] ?? null;
  } catch {
    return null;
  }
}
