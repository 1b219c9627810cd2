//! ffi/stress_test.zig: multi-threaded tests of queue.zig (exactly-once ownership, push never failing on a full ring); test-only code, deliberately not a benchmark and not part of libsockpool.so.
//!
//! The threads oversubscribe the machine (8 threads on typically 2 cores) on purpose: preemption
//! between a CAS and its publish is exactly the window these tests are meant to hit. Set
//! SOCKPOOL_SEED=<u64> to replay a seed; it is printed only when a test fails. Thread interleaving
//! is not reproducible, so a seed replays the random batch sizes and orders, not the schedule.

const std = @import("std");
const queue = @import("queue.zig");
const Queue = queue.Queue;
const testing = std.testing;

const max_batch = 16;

/// Start gate: every worker waits until all have been spawned, so they really run concurrently
/// instead of each finishing inside its first timeslice.
const Gate = struct {
    arrived: u32 = 0,

    fn wait(g: *Gate, n: u32) void {
        // monotonic: only a rendezvous; the queue operations carry their own ordering.
        _ = @atomicRmw(u32, &g.arrived, .Add, 1, .monotonic);
        // monotonic: as above.
        while (@atomicLoad(u32, &g.arrived, .monotonic) < n) std.Thread.yield() catch {};
    }
};

fn pickSeed() u64 {
    if (std.posix.getenv("SOCKPOOL_SEED")) |s| {
        if (std.fmt.parseInt(u64, s, 0)) |seed| return seed else |_| {}
    }
    var seed: u64 = undefined;
    std.crypto.random.bytes(std.mem.asBytes(&seed));
    return seed;
}

/// Seconds a stress test may run before the watchdog aborts it. A correct queue needs about one; a
/// broken one typically hands out an index twice, overfills the ring and leaves `push` waiting
/// forever for room, which must fail the test run rather than hang it.
const watchdog_s = 20;

/// Join `threads` after they have all bumped `finished`, or panic (printing `seed`) at the deadline.
fn joinWithWatchdog(threads: []std.Thread, finished: *u32, violations: *u32, name: []const u8, seed: u64) void {
    var waited_ms: u32 = 0;
    // acquire: pairs with the workers' release increment, so their results are visible after the loop (join orders them too).
    while (@atomicLoad(u32, finished, .acquire) < threads.len) : (waited_ms += 10) {
        if (waited_ms >= watchdog_s * 1000) std.debug.panic("{s}: stuck for {d} s (queue broken?), {d} ownership violations so far; replay with SOCKPOOL_SEED=0x{x}", .{
            name,
            watchdog_s,
            // monotonic: diagnostic only.
            @atomicLoad(u32, violations, .monotonic),
            seed,
        });
        std.Thread.sleep(10 * std.time.ns_per_ms);
    }
    for (threads) |t| t.join();
}

const Shared = struct {
    q: *Queue,
    slots: u32,
    owner: []u32,
    rounds: u32,
    threads: u32,
    seed: u64,
    gate: Gate = .{},
    finished: u32 = 0,
    violations: u32 = 0,
    short_pops: u32 = 0, // pops that returned empty although some slots were still queued
    acquired: u64 = 0,

    fn violation(s: *Shared) void {
        // monotonic: a counter read after join(), which orders it.
        _ = @atomicRmw(u32, &s.violations, .Add, 1, .monotonic);
    }
};

/// Take ownership of `idx`: the owner word must go 0 -> 1.
fn acquire(s: *Shared, idx: u32) void {
    if (idx >= s.slots) return s.violation();
    // acq_rel: the ownership flip must not be reordered with the queue operation that handed us idx.
    if (@atomicRmw(u32, &s.owner[idx], .Xchg, 1, .acq_rel) != 0) s.violation();
}

/// Give up ownership of `idx`: the owner word must go 1 -> 0 (before the push that hands it on).
fn release(s: *Shared, idx: u32) void {
    // acq_rel: the flip back must be visible before the push that lets another thread acquire idx.
    if (@atomicRmw(u32, &s.owner[idx], .Xchg, 0, .acq_rel) != 1) s.violation();
}

fn exactlyOnceWorker(s: *Shared, tid: u32) void {
    var prng = std.Random.DefaultPrng.init(s.seed +% @as(u64, tid) *% 0x9E37_79B9_7F4A_7C15);
    const r = prng.random();
    var held: [max_batch]u32 = undefined;
    var acquired: u64 = 0;
    var short: u32 = 0;
    s.gate.wait(s.threads);
    var round: u32 = 0;
    while (round < s.rounds) : (round += 1) {
        const want = r.intRangeAtMost(u32, 1, max_batch);
        var n: u32 = 0;
        if (r.boolean()) {
            n = s.q.popBatch(&held, want);
        } else {
            while (n < want) : (n += 1) held[n] = s.q.pop() orelse break;
        }
        if (n < want) short += 1;
        for (held[0..n]) |idx| acquire(s, idx);
        acquired += n;

        // Release in a random order and in random batch sizes, mixing single pushes and batches.
        r.shuffle(u32, held[0..n]);
        var i: u32 = 0;
        while (i < n) {
            const k = r.intRangeAtMost(u32, 1, n - i);
            for (held[i .. i + k]) |idx| release(s, idx);
            if (k == 1 and r.boolean()) {
                s.q.push(held[i]);
            } else if (s.q.pushBatch(held[i..].ptr, k) != k) {
                @panic("pushBatch found the ring full: a slot is in it twice");
            }
            i += k;
        }
    }
    // monotonic: counters read after join(), which orders them.
    _ = @atomicRmw(u64, &s.acquired, .Add, acquired, .monotonic);
    // monotonic: as above.
    _ = @atomicRmw(u32, &s.short_pops, .Add, short, .monotonic);
    // release: pairs with the watchdog's acquire.
    _ = @atomicRmw(u32, &s.finished, .Add, 1, .release);
}

const Run = struct {
    capacity: u32,
    slots: u32,
    threads: u32,
    rounds: u32,
    start: u32 = 0,
};

const Result = struct { acquired: u64, short_pops: u32 };

/// Fill a queue with all slot indices, let `threads` threads acquire and release them, then check
/// that no index was ever owned twice and that the queue ends holding each index exactly once.
fn runExactlyOnce(cfg: Run, seed: u64) !Result {
    const alloc = testing.allocator;
    const mem = try alloc.alignedAlloc(u8, .@"8", queue.bytesFor(cfg.capacity).?);
    defer alloc.free(mem);
    const owner = try alloc.alloc(u32, cfg.slots);
    defer alloc.free(owner);
    @memset(owner, 0);

    const q = try Queue.initAt(mem, cfg.capacity, cfg.start);
    for (0..cfg.slots) |i| try testing.expect(q.tryPush(@intCast(i)));

    var shared: Shared = .{ .q = q, .slots = cfg.slots, .owner = owner, .rounds = cfg.rounds, .threads = cfg.threads, .seed = seed };
    var threads: [16]std.Thread = undefined;
    for (threads[0..cfg.threads], 0..) |*t, i| t.* = try std.Thread.spawn(.{}, exactlyOnceWorker, .{ &shared, @as(u32, @intCast(i)) });
    joinWithWatchdog(threads[0..cfg.threads], &shared.finished, &shared.violations, "exactly-once", seed);

    try testing.expectEqual(@as(u32, 0), shared.violations);
    try testing.expectEqual(cfg.slots, q.len());
    // Popping everything yields each index exactly once, then empty.
    const seen = try alloc.alloc(bool, cfg.slots);
    defer alloc.free(seen);
    @memset(seen, false);
    for (0..cfg.slots) |_| {
        const v = q.pop() orelse return error.TestUnexpectedEmpty;
        try testing.expect(v < cfg.slots);
        try testing.expect(!seen[v]);
        seen[v] = true;
    }
    try testing.expectEqual(@as(?u32, null), q.pop());
    for (owner) |o| try testing.expectEqual(@as(u32, 0), o);
    return .{ .acquired = shared.acquired, .short_pops = shared.short_pops };
}

test "exactly-once: 8 threads, 1024 slots, ~17M acquires + ~17M releases" {
    const seed = pickSeed();
    errdefer std.debug.print("\nexactly-once (1024 slots) failed; replay with SOCKPOOL_SEED=0x{x}\n", .{seed});
    const res = try runExactlyOnce(.{ .capacity = 1024, .slots = 1024, .threads = 8, .rounds = 250_000 }, seed);
    try testing.expect(res.acquired > 15_000_000);
    // 8 threads hold at most 8 * 16 = 128 < 1024 slots, so the queue is never truly empty: any short
    // pop would be a spurious empty, which pop() must not report.
    try testing.expectEqual(@as(u32, 0), res.short_pops);
}

test "exactly-once: 8 threads, 64 slots (often truly empty), positions wrapping u32 mid-run" {
    const seed = pickSeed();
    errdefer std.debug.print("\nexactly-once (64 slots, wrap) failed; replay with SOCKPOOL_SEED=0x{x}\n", .{seed});
    // ~6M positions are consumed per run, so starting 2^18 below the wrap crosses it early in the run.
    const res = try runExactlyOnce(.{ .capacity = 64, .slots = 64, .threads = 8, .rounds = 120_000, .start = 0xFFFC_0000 }, seed);
    try testing.expect(res.acquired > 1_000_000);
}

const FullRing = struct {
    q: *Queue,
    slots: u32,
    owner: []u32,
    rounds: u32,
    threads: u32,
    seed: u64,
    gate: Gate = .{},
    finished: u32 = 0,
    violations: u32 = 0,
    true_full: u32 = 0, // pushOnce said `full` on a ring sized for every slot: must never happen
    spurious_full: u64 = 0, // pushOnce said `busy`: a consumer mid-pop, retried
    try_push_failed: u32 = 0,
};

fn fullRingWorker(s: *FullRing, tid: u32) void {
    var prng = std.Random.DefaultPrng.init(s.seed +% @as(u64, tid) *% 0x9E37_79B9_7F4A_7C15);
    const r = prng.random();
    var held: [2]u32 = undefined;
    var busy: u64 = 0;
    s.gate.wait(s.threads);
    var round: u32 = 0;
    while (round < s.rounds) : (round += 1) {
        // Hold at most two slots, so the ring stays (almost) full and pushes land on cells that
        // consumers have only just claimed.
        const want = r.intRangeAtMost(u32, 1, 2);
        var n: u32 = 0;
        while (n < want) : (n += 1) held[n] = s.q.pop() orelse break;
        for (held[0..n]) |idx| {
            // acq_rel: as in acquire() above.
            if (@atomicRmw(u32, &s.owner[idx], .Xchg, 1, .acq_rel) != 0) _ = @atomicRmw(u32, &s.violations, .Add, 1, .monotonic);
        }
        for (held[0..n]) |idx| {
            // acq_rel: as in release() above.
            if (@atomicRmw(u32, &s.owner[idx], .Xchg, 0, .acq_rel) != 1) _ = @atomicRmw(u32, &s.violations, .Add, 1, .monotonic);
            switch (round % 3) {
                0 => s.q.push(idx),
                1 => if (!s.q.tryPush(idx)) {
                    // monotonic: counter read after join().
                    _ = @atomicRmw(u32, &s.try_push_failed, .Add, 1, .monotonic);
                    s.q.push(idx);
                },
                else => while (true) {
                    switch (s.q.pushOnce(idx)) {
                        .ok => break,
                        .busy => {
                            // A consumer is preempted mid-pop: spin a little, then let it run.
                            busy += 1;
                            if (busy % 64 == 0) std.Thread.yield() catch {} else std.atomic.spinLoopHint();
                        },
                        .full => {
                            // monotonic: counter read after join().
                            _ = @atomicRmw(u32, &s.true_full, .Add, 1, .monotonic);
                            std.Thread.yield() catch {};
                        },
                    }
                },
            }
        }
    }
    // monotonic: counter read after join().
    _ = @atomicRmw(u64, &s.spurious_full, .Add, busy, .monotonic);
    // release: pairs with the watchdog's acquire.
    _ = @atomicRmw(u32, &s.finished, .Add, 1, .release);
}

test "full ring: capacity == slots, 8 threads pop/push concurrently, push never fails" {
    const seed = pickSeed();
    const alloc = testing.allocator;
    const slots = 16;
    const n_threads = 8;
    const mem = try alloc.alignedAlloc(u8, .@"8", queue.bytesFor(slots).?);
    defer alloc.free(mem);
    var owner = [_]u32{0} ** slots;
    const q = try Queue.init(mem, slots);
    for (0..slots) |i| q.push(@intCast(i));
    try testing.expect(!q.tryPush(0)); // truly full is reported as full

    var s: FullRing = .{ .q = q, .slots = slots, .owner = &owner, .rounds = 1_000_000, .threads = n_threads, .seed = seed };
    var threads: [n_threads]std.Thread = undefined;
    for (&threads, 0..) |*t, i| t.* = try std.Thread.spawn(.{}, fullRingWorker, .{ &s, @as(u32, @intCast(i)) });
    joinWithWatchdog(&threads, &s.finished, &s.violations, "full ring", seed);

    errdefer std.debug.print("\nfull ring failed: violations={d} true_full={d} spurious_full={d} try_push_failed={d}; replay with SOCKPOOL_SEED=0x{x}\n", .{ s.violations, s.true_full, s.spurious_full, s.try_push_failed, seed });
    try testing.expectEqual(@as(u32, 0), s.violations);
    try testing.expectEqual(@as(u32, 0), s.true_full);
    try testing.expectEqual(@as(u32, 0), s.try_push_failed);
    try testing.expectEqual(@as(u32, slots), q.len());
    var seen = [_]bool{false} ** slots;
    for (0..slots) |_| {
        const v = q.pop() orelse return error.TestUnexpectedEmpty;
        try testing.expect(!seen[v]);
        seen[v] = true;
    }
    try testing.expectEqual(@as(?u32, null), q.pop());
}
