//! ffi/c_api.zig: the flat C ABI of libsockpool that TypeScript binds with bun:ffi, one thin export per queue operation. It deliberately holds no algorithm (queue.zig), allocates nothing, and does not validate the header on hot paths (push/pop): only init validates.
//!
//! Signatures avoid i64/u64 so bun:ffi never has to box a BigInt. `mem` is the start of the queue
//! memory (a SharedArrayBuffer, at least 8-byte aligned) previously set up by sp_queue_init.

const std = @import("std");
const queue = @import("queue.zig");
const Queue = queue.Queue;

/// Bytes a queue of `capacity` cells needs; 0 if the capacity is invalid (not a power of two,
/// < 2 or > 2^30) or the size does not fit in u32.
export fn sp_queue_bytes(capacity: u32) u32 {
    return queue.bytesFor(capacity) orelse 0;
}

/// 0 ok; -1 capacity not a power of two in [2, 2^30] (or so large that its size overflows u32,
/// i.e. > 2^28); -2 mem_bytes < sp_queue_bytes(capacity); -3 mem not 8-byte aligned. Checked in
/// that order. Writes header, positions and sequences; does not fill values.
export fn sp_queue_init(mem: [*]u8, mem_bytes: u32, capacity: u32) i32 {
    _ = Queue.init(mem[0..mem_bytes], capacity) catch |err| return switch (err) {
        error.BadCapacity => -1,
        error.TooSmall => -2,
        error.Misaligned => -3,
    };
    return 0;
}

/// Push 0..count-1 (the pool's initial free list). 0 ok; -1 if count > capacity;
/// -2 if the queue ran out of room (it was not empty enough; nothing is rolled back).
export fn sp_queue_fill(mem: [*]u8, count: u32) i32 {
    const q = Queue.fromMem(mem);
    if (count > q.capacity()) return -1;
    var i: u32 = 0;
    while (i < count) : (i += 1) {
        if (!q.tryPush(i)) return -2;
    }
    return 0;
}

/// Push that never fails (retries a spurious full; the ring is sized for every slot).
export fn sp_queue_push(mem: [*]u8, value: u32) void {
    Queue.fromMem(mem).push(value);
}

/// 0 ok, -1 full.
export fn sp_queue_try_push(mem: [*]u8, value: u32) i32 {
    return if (Queue.fromMem(mem).tryPush(value)) 0 else -1;
}

/// The popped value (values are < 2^30, so it fits i32) or -1 when empty.
export fn sp_queue_pop(mem: [*]u8) i32 {
    const v = Queue.fromMem(mem).pop() orelse return -1;
    return @bitCast(v);
}

/// Pop up to `max` values into `out`; returns how many (0..max), stopping at the first empty.
export fn sp_queue_pop_batch(mem: [*]u8, out: [*]u32, max: u32) u32 {
    return Queue.fromMem(mem).popBatch(out, max);
}

/// Push `values[0..count)` in order, each bounded like sp_queue_try_push; returns how many were
/// pushed. Less than `count` only when the ring filled up, which for a ring sized for every slot
/// means a double release (TypeScript throws POOL_FREE_LIST_FULL then).
export fn sp_queue_push_batch(mem: [*]u8, values: [*]const u32, count: u32) u32 {
    return Queue.fromMem(mem).pushBatch(values, count);
}

/// Approximate number of queued values (enqueue_pos - dequeue_pos, monotonic loads).
export fn sp_queue_len(mem: [*]u8) u32 {
    return Queue.fromMem(mem).len();
}

/// Write the layout constants in the field order of `queue.Layout` (magic, version, cache_line_bytes,
/// capacity_offset, mask_offset, enqueue_pos_offset, dequeue_pos_offset, cells_offset, cell_bytes,
/// cell_sequence_offset, cell_value_offset); returns how many were written (min(max, 11)).
export fn sp_queue_layout(out: [*]u32, max: u32) u32 {
    var n: u32 = 0;
    inline for (std.meta.fields(queue.Layout)) |f| {
        if (n >= max) return n;
        out[n] = @field(queue.layout, f.name);
        n += 1;
    }
    return n;
}

/// Does nothing: the baseline for the cost of one FFI call in benchmarks.
export fn sp_noop() void {}

/// The version of this C ABI: the exports, their signatures and what they mean. TypeScript refuses a
/// library whose version differs from its own (NATIVE_ABI_VERSION in src/pool/freelist/native.ts)
/// and falls back to the TypeScript queue, so a stale build is never called with the wrong contract.
/// The shared memory layout has its own version (the `version` field of sp_queue_layout).
///   1  the first ABI
///   2  sp_queue_push_batch is bounded and returns how many it pushed (it used to wait forever on a
///      full ring and return nothing)
pub const abi_version: u32 = 2;

/// The C ABI version this library implements (`abi_version`).
export fn sp_version() u32 {
    return abi_version;
}

// ---------------------------------------------------------------- tests

const testing = std.testing;

test {
    // One test binary covers the whole native library.
    _ = queue;
    _ = @import("stress_test.zig");
}

test "sp_queue_layout order and values" {
    const names = [_][]const u8{
        "magic",                "version",           "cache_line_bytes",
        "capacity_offset",      "mask_offset",       "enqueue_pos_offset",
        "dequeue_pos_offset",   "cells_offset",      "cell_bytes",
        "cell_sequence_offset", "cell_value_offset",
    };
    const fields = std.meta.fields(queue.Layout);
    try testing.expectEqual(names.len, fields.len);
    inline for (fields, 0..) |f, i| try testing.expectEqualStrings(names[i], f.name);

    var out = [_]u32{0xDEAD} ** 16;
    try testing.expectEqual(@as(u32, 11), sp_queue_layout(&out, 16));
    try testing.expectEqualSlices(u32, &.{ 0x5350_5131, 1, 128, 8, 12, 128, 256, 384, 8, 0, 4 }, out[0..11]);
    try testing.expectEqual(@as(u32, 0xDEAD), out[11]);

    var short = [_]u32{0xDEAD} ** 4;
    try testing.expectEqual(@as(u32, 3), sp_queue_layout(&short, 3));
    try testing.expectEqualSlices(u32, &.{ 0x5350_5131, 1, 128, 0xDEAD }, &short);
    try testing.expectEqual(@as(u32, 0), sp_queue_layout(&short, 0));
    try testing.expectEqual(@as(u32, 2), sp_version());
    sp_noop();
}

test "sp_queue_bytes" {
    try testing.expectEqual(@as(u32, 384 + 64 * 8), sp_queue_bytes(64));
    try testing.expectEqual(@as(u32, 0), sp_queue_bytes(0));
    try testing.expectEqual(@as(u32, 0), sp_queue_bytes(1));
    try testing.expectEqual(@as(u32, 0), sp_queue_bytes(100));
    try testing.expectEqual(@as(u32, 0), sp_queue_bytes(1 << 29));
    try testing.expectEqual(@as(u32, 0), sp_queue_bytes(0xFFFF_FFFF));
}

test "sp_queue_init error codes" {
    var buf: [384 + 16 * 8 + 8]u8 align(8) = undefined;
    try testing.expectEqual(@as(i32, -1), sp_queue_init(&buf, buf.len, 0));
    try testing.expectEqual(@as(i32, -1), sp_queue_init(&buf, buf.len, 1));
    try testing.expectEqual(@as(i32, -1), sp_queue_init(&buf, buf.len, 6));
    try testing.expectEqual(@as(i32, -1), sp_queue_init(&buf, buf.len, (1 << 30) + 1));
    try testing.expectEqual(@as(i32, -1), sp_queue_init(&buf, buf.len, 1 << 31));
    try testing.expectEqual(@as(i32, -2), sp_queue_init(&buf, buf.len, 32));
    try testing.expectEqual(@as(i32, -2), sp_queue_init(&buf, 384 + 16 * 8 - 1, 16));
    try testing.expectEqual(@as(i32, -3), sp_queue_init(buf[4..].ptr, buf.len - 4, 16));
    try testing.expectEqual(@as(i32, -3), sp_queue_init(buf[1..].ptr, buf.len - 1, 8));
    try testing.expectEqual(@as(i32, 0), sp_queue_init(&buf, 384 + 16 * 8, 16));
    try testing.expectEqual(@as(i32, 0), sp_queue_init(buf[8..].ptr, buf.len - 8, 16));
}

test "sp_queue push/pop/fill/len through the C ABI" {
    var buf: [384 + 8 * 8]u8 align(8) = undefined;
    const mem: [*]u8 = &buf;
    try testing.expectEqual(@as(i32, 0), sp_queue_init(mem, buf.len, 8));
    try testing.expectEqual(@as(i32, -1), sp_queue_pop(mem));
    try testing.expectEqual(@as(i32, -1), sp_queue_fill(mem, 9));
    try testing.expectEqual(@as(i32, 0), sp_queue_fill(mem, 8));
    try testing.expectEqual(@as(u32, 8), sp_queue_len(mem));
    try testing.expectEqual(@as(i32, -1), sp_queue_try_push(mem, 99));
    try testing.expectEqual(@as(i32, -2), sp_queue_fill(mem, 1)); // no room left
    for (0..8) |i| try testing.expectEqual(@as(i32, @intCast(i)), sp_queue_pop(mem));
    try testing.expectEqual(@as(i32, -1), sp_queue_pop(mem));
    try testing.expectEqual(@as(u32, 0), sp_queue_len(mem));

    sp_queue_push(mem, 7);
    try testing.expectEqual(@as(i32, 0), sp_queue_try_push(mem, 3));
    try testing.expectEqual(@as(u32, 2), sp_queue_len(mem));
    try testing.expectEqual(@as(i32, 7), sp_queue_pop(mem));
    try testing.expectEqual(@as(i32, 3), sp_queue_pop(mem));

    // Largest value the pool uses still round-trips through the i32 return.
    sp_queue_push(mem, (1 << 30) - 1);
    try testing.expectEqual(@as(i32, (1 << 30) - 1), sp_queue_pop(mem));
}

test "sp_queue batches through the C ABI" {
    var buf: [384 + 16 * 8]u8 align(8) = undefined;
    const mem: [*]u8 = &buf;
    try testing.expectEqual(@as(i32, 0), sp_queue_init(mem, buf.len, 16));
    var out: [16]u32 = undefined;
    try testing.expectEqual(@as(u32, 0), sp_queue_pop_batch(mem, &out, 16));
    const vals = [_]u32{ 10, 11, 12, 13, 14, 15 };
    try testing.expectEqual(@as(u32, 6), sp_queue_push_batch(mem, &vals, vals.len));
    try testing.expectEqual(@as(u32, 4), sp_queue_pop_batch(mem, &out, 4));
    try testing.expectEqualSlices(u32, &.{ 10, 11, 12, 13 }, out[0..4]);
    try testing.expectEqual(@as(u32, 2), sp_queue_pop_batch(mem, &out, 16));
    try testing.expectEqualSlices(u32, &.{ 14, 15 }, out[0..2]);
    try testing.expectEqual(@as(u32, 0), sp_queue_len(mem));

    // A batch that overfills the ring (a double release) is cut short, not waited on forever.
    const many = [_]u32{0} ** 20;
    try testing.expectEqual(@as(u32, 16), sp_queue_push_batch(mem, &many, many.len));
    try testing.expectEqual(@as(u32, 0), sp_queue_push_batch(mem, &many, 1));
    try testing.expectEqual(@as(u32, 16), sp_queue_len(mem));
}
