// The single-executable entry (`bun run compile` → dist/sockpool): embeds libsockpool, extracts it
// once per version to $TMPDIR, points the pool at that copy, then runs main.ts. Not a second main:
// flags, config, logs and the fallback to the TypeScript queue are all main.ts's and the pool's,
// exactly as with `bun run serve`.
//
// - `with { type: "file" }` embeds the library that `bun run compile` builds into dist/native/ with
//   -Dcpu=baseline: a build for this machine's CPU may use instructions (AVX-512 here) that another
//   CPU lacks, and that crashes at the first pool call instead of falling back. `lib` is the
//   library's path inside the binary (/$bunfs/…).
// - dlopen of that path would make Bun extract it to $TMPDIR/.bun-<uid>-<hash>.so and never remove
//   it. Instead the library is copied here, once, to $TMPDIR/sockpool-<version>-<uid>-<hash>.so
//   (written to a temporary name, then renamed, so a concurrent start never loads half a file),
//   and every later run of the same build reuses it. A file by that name is used only if it is
//   ours (same uid, a regular file, writable by no one else) and holds exactly the embedded bytes;
//   otherwise it is replaced. If none of that works, Bun's own extraction is the fallback.
//   $TMPDIR must exist, be writable and allow exec; if not, loading fails and the pool falls back
//   with one warning (src/pool/freelist/native.ts says which fix applies).
// - Workers read the same variable: the supervisor starts each Worker with `env: SHARE_ENV`
//   (without options, a Bun 1.4.5 Worker sees only the environment the process started with).
// - main.ts is imported dynamically because a static import would run it before these lines.

import { lstatSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import packageJson from "../package.json" with { type: "json" };
import lib from "../dist/native/lib/libsockpool.so" with { type: "file" };

/** The path of our one extraction of `embedded` for this build, or null to let Bun extract it. */
function extractOnce(embedded: string): string | null {
  try {
    const bytes = readFileSync(embedded);
    const hash = new Bun.CryptoHasher("sha256").update(bytes).digest("hex").slice(0, 16);
    const uid = process.getuid?.() ?? 0;
    const path = join(tmpdir(), `sockpool-${packageJson.version}-${uid}-${hash}.so`);
    if (isOurCopy(path, uid, bytes)) return path;
    const temporary = `${path}.${process.pid}.tmp`;
    try {
      writeFileSync(temporary, bytes, { mode: 0o700 });
      renameSync(temporary, path); // atomic: a reader sees the old file or the whole new one
    } finally {
      rmSync(temporary, { force: true });
    }
    return isOurCopy(path, uid, bytes) ? path : null;
  } catch {
    return null;
  }
}

function isOurCopy(path: string, uid: number, bytes: Uint8Array): boolean {
  try {
    const info = lstatSync(path);
    if (!info.isFile() || info.uid !== uid || (info.mode & 0o022) !== 0) return false;
    return info.size === bytes.length && Buffer.from(bytes).equals(readFileSync(path));
  } catch {
    return false;
  }
}

// An explicit SOCKPOOL_NATIVE_LIB still wins, as in a checkout (e.g. a copy on an exec-able disk).
process.env.SOCKPOOL_NATIVE_LIB ||= extractOnce(lib) ?? lib;

await import("./main.ts");
