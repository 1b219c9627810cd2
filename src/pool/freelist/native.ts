// The one module that imports bun:ffi: loads libsockpool (ffi/, built by `zig build`), refuses a
// library built from other sources (its sp_version and sp_queue_layout must equal this side's), and
// wraps its queue as a SlotQueue. Not a fallback policy: index.ts decides what to do when loading
// fails.
//
// Pointers are taken once (ptr() costs ~12 ns) from buffers built on an explicit (Shared)ArrayBuffer;
// ptr() of a SharedArrayBuffer is the same address in every Worker of the process, so the Zig code
// works directly on the shared memory. Return types are 32-bit: an i64 would come back as a BigInt.

import { dlopen, FFIType, type Pointer, ptr, suffix } from "bun:ffi";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { PoolError } from "../types.ts";
import { LAYOUT_FIELDS, type LayoutField, TS_LAYOUT } from "./layout.ts";
import { type BatchBuffer, freeListFull, type SlotQueue } from "./ring.ts";

const SYMBOLS = {
  sp_version: { args: [], returns: FFIType.u32 },
  sp_noop: { args: [], returns: FFIType.void },
  sp_queue_layout: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.u32 },
  sp_queue_bytes: { args: [FFIType.u32], returns: FFIType.u32 },
  sp_queue_init: { args: [FFIType.ptr, FFIType.u32, FFIType.u32], returns: FFIType.i32 },
  sp_queue_fill: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  sp_queue_pop: { args: [FFIType.ptr], returns: FFIType.i32 },
  sp_queue_try_push: { args: [FFIType.ptr, FFIType.u32], returns: FFIType.i32 },
  sp_queue_pop_batch: { args: [FFIType.ptr, FFIType.ptr, FFIType.u32], returns: FFIType.u32 },
  sp_queue_push_batch: { args: [FFIType.ptr, FFIType.ptr, FFIType.u32], returns: FFIType.u32 },
  sp_queue_len: { args: [FFIType.ptr], returns: FFIType.u32 },
} as const;

type NativeSymbols = ReturnType<typeof dlopen<typeof SYMBOLS>>["symbols"];

export type NativeLoad =
  | { ok: true; path: string; symbols: NativeSymbols }
  | { ok: false; path: string; reason: string };

/** Where the library is looked for: $SOCKPOOL_NATIVE_LIB, else zig-out/lib/ of this checkout. */
export function nativeLibraryPath(): string {
  const override = process.env.SOCKPOOL_NATIVE_LIB;
  if (override) return override;
  return fileURLToPath(new URL(`../../../zig-out/lib/libsockpool.${suffix}`, import.meta.url));
}

/** The C ABI these bindings are written for: `abi_version` in ffi/c_api.zig, bumped together.
 *  2: sp_queue_push_batch is bounded and returns how many it pushed. */
export const NATIVE_ABI_VERSION = 2;

/** What a library must report to be used: its ABI version and its shared memory layout. */
export interface NativeExpectation {
  version: number;
  layout: Readonly<Record<LayoutField, number>>;
}

export const NATIVE_EXPECTED: NativeExpectation = {
  version: NATIVE_ABI_VERSION,
  layout: TS_LAYOUT,
};

let loaded: NativeLoad | undefined;

/** Loads the library once per thread. Never throws: a failure carries the reason, for one warning.
 *  The first call on a thread decides; `expected` is for tests that play a stale library without
 *  building one (pass an expectation the real library cannot meet). */
export function loadNative(expected: NativeExpectation = NATIVE_EXPECTED): NativeLoad {
  if (loaded) return loaded;
  const path = nativeLibraryPath();
  if (process.env.SOCKPOOL_NATIVE === "off") {
    loaded = { ok: false, path, reason: "disabled by SOCKPOOL_NATIVE=off" };
    return loaded;
  }
  loaded = openNative(path, expected);
  return loaded;
}

/** Opens the library at `path` and checks that it is the one these bindings were written for: a
 *  stale build (an older ABI, another layout) is closed again and reported, never called. */
export function openNative(
  path: string,
  expected: NativeExpectation = NATIVE_EXPECTED,
): NativeLoad {
  let library: ReturnType<typeof dlopen<typeof SYMBOLS>>;
  try {
    library = dlopen(path, SYMBOLS);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    return { ok: false, path, reason: `cannot load ${path}: ${detail} (${loadHint(path)})` };
  }
  const mismatch = nativeMismatch(library.symbols, expected);
  if (mismatch !== null) {
    library.close();
    return {
      ok: false,
      path,
      reason: `${path} was built from other sources: ${mismatch} (rebuild it with "bun run build:native"${process.env.SOCKPOOL_NATIVE_LIB ? ", or point SOCKPOOL_NATIVE_LIB at a current build" : ""})`,
    };
  }
  return { ok: true, path, symbols: library.symbols };
}

/** What differs between the library and the expectation, or null when nothing does. sp_version and
 *  sp_queue_layout exist, with these signatures, in every ABI version. */
function nativeMismatch(symbols: NativeSymbols, expected: NativeExpectation): string | null {
  const version = symbols.sp_version();
  if (version !== expected.version) {
    return `its ABI version (sp_version) is ${version}, these bindings need ${expected.version}`;
  }
  const { layout, written } = readLayout(symbols);
  if (written !== LAYOUT_FIELDS.length) {
    return `its layout (sp_queue_layout) has ${written} fields, TypeScript expects ${LAYOUT_FIELDS.length}`;
  }
  const differ = LAYOUT_FIELDS.filter((field) => layout[field] !== expected.layout[field]);
  if (differ.length === 0) return null;
  const details = differ.map(
    (field) => `${field} ${layout[field]} (TypeScript: ${expected.layout[field]})`,
  );
  return `its queue layout differs: ${details.join(", ")}`;
}

function readLayout(symbols: NativeSymbols): {
  layout: Record<LayoutField, number>;
  written: number;
} {
  const out = new Uint32Array(new ArrayBuffer(64 * 4));
  const written = symbols.sp_queue_layout(ptr(out), out.length);
  const layout = {} as Record<LayoutField, number>;
  LAYOUT_FIELDS.forEach((field, i) => {
    layout[field] = out[i]!;
  });
  return { layout, written };
}

/** How to fix a library that would not load: the fix differs in a checkout and in dist/sockpool. */
function loadHint(path: string): string {
  // Inside a compiled binary the library is embedded and extracted to $TMPDIR first: by
  // src/compiled.ts (sockpool-<version>-…so), or by dlopen when that copy could not be made.
  const extracted = path.startsWith("/$bunfs/") || path.startsWith(join(tmpdir(), "sockpool-"));
  if (Bun.isStandaloneExecutable && extracted) {
    return `the embedded library is extracted to $TMPDIR (${tmpdir()}), which must exist, be writable and allow exec; set TMPDIR or SOCKPOOL_NATIVE_LIB`;
  }
  if (process.env.SOCKPOOL_NATIVE_LIB) return "check SOCKPOOL_NATIVE_LIB";
  return 'build it with "bun run build:native"';
}

function requireNative(): NativeSymbols {
  const lib = loadNative();
  if (!lib.ok) throw new PoolError("POOL_CONFIG", lib.reason);
  return lib.symbols;
}

/** The layout constants as the Zig side declares them (see layout.ts for the TypeScript side). */
export function nativeLayout(): Record<LayoutField, number> {
  const { layout, written } = readLayout(requireNative());
  if (written !== LAYOUT_FIELDS.length) {
    throw new PoolError(
      "POOL_MEMORY",
      `native layout has ${written} fields, TypeScript expects ${LAYOUT_FIELDS.length}`,
    );
  }
  return layout;
}

export function nativeQueueBytes(capacity: number): number {
  return requireNative().sp_queue_bytes(capacity);
}

/** Initialises `memory` as a queue of `capacity` cells and pushes slot indices 0..fill-1. */
export function nativeInitRing(memory: SharedArrayBuffer, capacity: number, fill: number): void {
  const lib = requireNative();
  const address = ptr(memory);
  const init = lib.sp_queue_init(address, memory.byteLength, capacity);
  if (init !== 0) {
    throw new PoolError("POOL_MEMORY", `sp_queue_init(capacity ${capacity}) failed with ${init}`);
  }
  const filled = lib.sp_queue_fill(address, fill);
  if (filled !== 0)
    throw new PoolError("POOL_MEMORY", `sp_queue_fill(${fill}) failed with ${filled}`);
}

/** An empty native call: the baseline for what crossing bun:ffi costs. */
export function nativeNoop(): () => void {
  return requireNative().sp_noop;
}

export class NativeRing implements SlotQueue {
  readonly backend = "native" as const;
  /** The ring's memory. Held, not just its address: otherwise the GC may free the buffer behind
   *  `address` once no one else references it (createPool() keeps no other reference), and the
   *  next native call writes to freed, possibly unmapped, memory. */
  readonly memory: SharedArrayBuffer;
  private readonly address: Pointer;
  private readonly popFn: NativeSymbols["sp_queue_pop"];
  private readonly popBatchFn: NativeSymbols["sp_queue_pop_batch"];
  private readonly pushBatchFn: NativeSymbols["sp_queue_push_batch"];
  private readonly lenFn: NativeSymbols["sp_queue_len"];
  private readonly tryPushFn: NativeSymbols["sp_queue_try_push"];

  constructor(memory: SharedArrayBuffer) {
    const lib = requireNative();
    this.memory = memory;
    this.address = ptr(memory);
    this.popFn = lib.sp_queue_pop;
    this.tryPushFn = lib.sp_queue_try_push;
    this.popBatchFn = lib.sp_queue_pop_batch;
    this.pushBatchFn = lib.sp_queue_push_batch;
    this.lenFn = lib.sp_queue_len;
  }

  pop(): number {
    return this.popFn(this.address);
  }

  /** sp_queue_try_push waits out a preempted consumer (up to ffi/queue.zig's busy_wait_limit_ns)
   *  and fails only on a truly full ring, which only a double release produces. */
  push(value: number): void {
    if (this.tryPushFn(this.address, value) !== 0) throw freeListFull(value);
  }

  tryPush(value: number): boolean {
    return this.tryPushFn(this.address, value) === 0;
  }

  popBatch(batch: BatchBuffer, offset: number, max: number): number {
    return this.popBatchFn(this.address, (batch.address + offset * 4) as Pointer, max);
  }

  /** Each value is bounded like push(); a short count means the ring filled up (a double release).
   *  The values before the one that did not fit stay pushed. */
  pushBatch(batch: BatchBuffer, offset: number, count: number): void {
    const pushed = this.pushBatchFn(this.address, (batch.address + offset * 4) as Pointer, count);
    if (pushed !== count) throw freeListFull(batch.values[offset + pushed]!);
  }

  length(): number {
    return this.lenFn(this.address);
  }

  createBatch(size: number): BatchBuffer {
    const values = new Uint32Array(new ArrayBuffer(size * 4));
    return { values, address: ptr(values) };
  }
}
