// The single-executable entry (`bun run compile` → dist/sockpool): embeds libsockpool, points the
// pool at the embedded copy, then runs main.ts. Not a second main: flags, config, logs and the
// fallback to the TypeScript queue are all main.ts's and the pool's, exactly as with `bun run serve`.
//
// - `with { type: "file" }` embeds the library that `bun run compile` builds into dist/native/ with
//   -Dcpu=baseline: a build for this machine's CPU may use instructions (AVX-512 here) that another
//   CPU lacks, and that crashes at the first pool call instead of falling back. `lib` is the
//   library's path inside the binary (/$bunfs/…).
// - dlopen of that path makes Bun extract the library to $TMPDIR/.bun-<uid>-<hash>.so, once per
//   process, so $TMPDIR must exist, be writable and allow exec. If not, loading fails and the pool
//   falls back with one warning (src/pool/freelist/native.ts says which fix applies).
// - Workers read the same variable: the supervisor starts each Worker with `env: SHARE_ENV`
//   (without options, a Bun 1.4.5 Worker sees only the environment the process started with).
// - main.ts is imported dynamically because a static import would run it before these lines.

import lib from "../dist/native/lib/libsockpool.so" with { type: "file" };

// An explicit SOCKPOOL_NATIVE_LIB still wins, as in a checkout (e.g. a copy on an exec-able disk).
process.env.SOCKPOOL_NATIVE_LIB ||= lib;

await import("./main.ts");
