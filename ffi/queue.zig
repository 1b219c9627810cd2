//! ffi/queue.zig: the bounded lock-free MPMC queue of u32 slot indices that backs the buffer pool, over memory the caller owns. It is deliberately not an allocator, not a general-purpose container, and not the C ABI (that is c_api.zig).
//!
//! The memory layout is declared here as `extern struct`s and must match src/pool/freelist/layout.ts
//! (the TypeScript statement of the same layout); `Layout` below is the field-by-field export of it
//! that sp_queue_layout() hands to TypeScript, in the order of LAYOUT_FIELDS.
//!
//! Algorithm: Dmitry Vyukov's bounded MPMC queue (as in crossbeam's ArrayQueue): every cell carries a
//! sequence number that says which position may touch it next. For a cell at ring index i and a
//! position p with p & mask == i:
//!   sequence == p          the cell is free and the producer claiming enqueue position p may fill it;
//!   sequence == p + 1      the cell holds the value pushed at p and the consumer claiming dequeue p may take it;
//!   sequence == p + cap    the cell was emptied at p and is free again for the producer of p + cap.
//! All position and sequence arithmetic is on wrapping u32, compared through the signed 32-bit difference.
//!
//! Concurrency note
//! ----------------
//! * Preemption between claim and publish. A producer claims position p with a CAS on enqueue_pos and
//!   only afterwards writes the value and releases sequence = p + 1. A consumer that reaches that cell
//!   in between sees "not yet filled" although enqueue_pos says the queue is non-empty. Plain Vyukov
//!   reports "empty" there (a spurious empty). `pop` instead re-reads enqueue_pos: if it equals the
//!   dequeue position the queue is truly empty and `pop` says so; otherwise a push is in flight and
//!   `pop` backs off (spin, then yield, then short sleeps) and retries.
//! * Why that retry is bounded (up to `busy_wait_limit_ns` of requested sleep, then "empty"): the
//!   in-flight push may never finish. The SharedArrayBuffer outlives any single Worker; a Worker
//!   terminated between its CAS and its publish leaves that cell unpublished forever, and an
//!   unbounded wait would hang every consumer that ever reaches it. After the bound, "empty" is the
//!   safe answer: the caller sees exhaustion, never a slot it does not own.
//! * Why sleeps and not only yields: with more runnable threads than cores, sched_yield does not
//!   reliably hand the CPU to the preempted peer; the 8-thread stress test on 2 cores exceeded
//!   4096 pure yield rounds, while with sleeps the longest observed wait is ~40 backoff steps.
//! * The mirror case, spurious full: a consumer preempted between its CAS on dequeue_pos and its
//!   release of sequence = p + cap makes the next producer see "cell still occupied". The pool sizes
//!   the ring for every slot, so a true "full" on push is impossible (the pusher holds a slot that is
//!   therefore not in the ring); `push` retries with backoff until it lands and never fails.
//!   `tryPush` reports full only when dequeue_pos confirms the ring is truly full (or after the same
//!   bound as pop). Pushing a slot twice (a double free) is a caller bug; with a full ring `push`
//!   would then wait for a free cell indefinitely, so TypeScript uses only the bounded `tryPush` and
//!   `pushBatch` (which stops at the first value that does not fit) and reports a full ring.
//! * ABA is impossible: a cell's sequence advances by exactly `capacity` per lap and positions only
//!   grow, so a thread holding a stale position either sees a sequence that does not match it
//!   (reload) or loses its CAS (reload). A stale claim could only succeed if the positions advanced by
//!   exactly 2^32 while that one thread sat descheduled between its load and its CAS (tens of seconds
//!   of uninterrupted traffic at full speed); that wraparound bound is accepted.
//! * Wraparound: positions and sequences are u32 and wrap; differences are read as i32, which is exact
//!   as long as every live difference is below 2^31. The largest honest difference is `capacity`, so
//!   capacity <= 2^30 keeps a factor-two margin.
//! * Capacity 1 is rejected: with a single cell "filled at p" (p + 1) and "emptied at p" (p + mask + 1)
//!   are the same sequence value, so a producer could overwrite an unconsumed value. Vyukov's
//!   algorithm needs capacity >= 2.
//! * Values are written and read with monotonic atomics although the sequence release/acquire pair
//!   already orders them: the memory is shared with TypeScript Workers, and atomic access keeps any
//!   cross-language access pattern free of data races at zero cost on x86 and ARM.
//! * The "truly empty"/"truly full" verdicts are exact for every operation that happens-before the
//!   call (its position update is then visible by coherence). Against operations running at the
//!   same time they are only a snapshot, which is inherent to any concurrent queue.
//! * `len` is a racy snapshot; it is a statistic, never a synchronisation point.

const std = @import("std");

pub const magic: u32 = 0x5350_5131; // "SPQ1"
pub const version: u32 = 1;
pub const cache_line_bytes: u32 = 128;
pub const capacity_min: u32 = 2;
pub const capacity_max: u32 = 1 << 30;

/// How long a `pop`/`tryPush` waits for a peer stuck between its CAS and its publish before giving up
/// (see Concurrency note): spin and yield rounds, then this much requested sleep. A preempted thread
/// is normally back within one scheduler period (tens of ms even when oversubscribed).
pub const busy_wait_limit_ns: u64 = 100 * std.time.ns_per_ms;

/// The shared header: three cache-line-sized blocks (128 bytes each, see layout.ts for why 128).
pub const Header = extern struct {
    magic: u32,
    version: u32,
    capacity: u32,
    mask: u32,
    _pad0: [cache_line_bytes - 4 * @sizeOf(u32)]u8,
    /// Producers' CAS target.
    enqueue_pos: u32,
    _pad1: [cache_line_bytes - @sizeOf(u32)]u8,
    /// Consumers' CAS target.
    dequeue_pos: u32,
    _pad2: [cache_line_bytes - @sizeOf(u32)]u8,
};

pub const Cell = extern struct {
    sequence: u32,
    value: u32,
};

pub const cells_offset: u32 = @sizeOf(Header);

comptime {
    std.debug.assert(@offsetOf(Header, "magic") == 0);
    std.debug.assert(@offsetOf(Header, "version") == 4);
    std.debug.assert(@offsetOf(Header, "capacity") == 8);
    std.debug.assert(@offsetOf(Header, "mask") == 12);
    std.debug.assert(@offsetOf(Header, "enqueue_pos") == 128);
    std.debug.assert(@offsetOf(Header, "dequeue_pos") == 256);
    std.debug.assert(@sizeOf(Header) == 384);
    std.debug.assert(cells_offset == 384);
    std.debug.assert(@sizeOf(Cell) == 8);
    std.debug.assert(@offsetOf(Cell, "sequence") == 0);
    std.debug.assert(@offsetOf(Cell, "value") == 4);
    std.debug.assert(cells_offset % @alignOf(Cell) == 0);
}

/// The layout as exported through sp_queue_layout(), in exactly this field order
/// (LAYOUT_FIELDS in src/pool/freelist/layout.ts).
pub const Layout = extern struct {
    magic: u32,
    version: u32,
    cache_line_bytes: u32,
    capacity_offset: u32,
    mask_offset: u32,
    enqueue_pos_offset: u32,
    dequeue_pos_offset: u32,
    cells_offset: u32,
    cell_bytes: u32,
    cell_sequence_offset: u32,
    cell_value_offset: u32,
};

pub const layout: Layout = .{
    .magic = magic,
    .version = version,
    .cache_line_bytes = cache_line_bytes,
    .capacity_offset = @offsetOf(Header, "capacity"),
    .mask_offset = @offsetOf(Header, "mask"),
    .enqueue_pos_offset = @offsetOf(Header, "enqueue_pos"),
    .dequeue_pos_offset = @offsetOf(Header, "dequeue_pos"),
    .cells_offset = cells_offset,
    .cell_bytes = @sizeOf(Cell),
    .cell_sequence_offset = @offsetOf(Cell, "sequence"),
    .cell_value_offset = @offsetOf(Cell, "value"),
};

/// Required alignment of the memory handed to `init` (a SharedArrayBuffer is at least 8-aligned).
pub const mem_align: u32 = 8;

pub const InitError = error{ BadCapacity, TooSmall, Misaligned };

pub fn validCapacity(capacity: u32) bool {
    return capacity >= capacity_min and capacity <= capacity_max and std.math.isPowerOfTwo(capacity);
}

/// Bytes a queue of `capacity` cells needs, or null if the capacity is invalid or the size overflows u32.
pub fn bytesFor(capacity: u32) ?u32 {
    if (!validCapacity(capacity)) return null;
    const cell_bytes = std.math.mul(u32, capacity, @sizeOf(Cell)) catch return null;
    return std.math.add(u32, cells_offset, cell_bytes) catch return null;
}

/// Signed distance a - b on the wrapping u32 circle.
inline fn diff(a: u32, b: u32) i32 {
    return @bitCast(a -% b);
}

/// Exponential backoff for waiting on a descheduled peer: doubling rounds of spin-loop hints (the
/// peer is probably running on another core), then sched_yield (it may be waiting for ours), then
/// sleeps doubling from 1 us to 1 ms (yield alone does not reliably hand the CPU to a preempted
/// thread when every core is busy with yielders, so the stress test needs real sleeps).
const Backoff = struct {
    const spin_steps = 7; // 1, 2, ..., 64 hints
    const yield_steps = 16;
    const sleep_min_ns: u64 = 1_000;
    const sleep_max_ns: u64 = 1_000_000;

    step: u32 = 0,
    /// Requested sleep so far. Counted rather than measured, so time a throttled process spends
    /// off-CPU does not use up a caller's patience.
    slept_ns: u64 = 0,

    fn snooze(self: *Backoff) void {
        if (self.step < spin_steps) {
            var i: u32 = 0;
            while (i < (@as(u32, 1) << @intCast(self.step))) : (i += 1) std.atomic.spinLoopHint();
        } else if (self.step < spin_steps + yield_steps) {
            std.Thread.yield() catch {};
        } else {
            const shift: u6 = @intCast(@min(self.step - (spin_steps + yield_steps), 10));
            const ns = @min(sleep_max_ns, sleep_min_ns << shift);
            std.Thread.sleep(ns);
            self.slept_ns += ns;
        }
        self.step +|= 1;
    }

    /// For bounded waits (pop, tryPush): true once the sleep phase has used up `busy_wait_limit_ns`.
    fn exhausted(self: *const Backoff) bool {
        return self.slept_ns >= busy_wait_limit_ns;
    }
};

pub const PushOnce = enum { ok, full, busy };
pub const PopOnce = union(enum) { value: u32, empty, busy };

/// A queue is a view of caller-provided memory beginning with the header; the cells follow it.
pub const Queue = extern struct {
    header: Header,

    /// Validate and initialise `mem` as an empty queue of `cap` cells. Values are not filled.
    pub fn init(mem: []u8, cap: u32) InitError!*Queue {
        return initAt(mem, cap, 0);
    }

    /// `init`, but with both positions starting at `start` and consistent sequences. Only tests need a
    /// start other than 0 (to cross the u32 wrap without 2^32 operations).
    pub fn initAt(mem: []u8, cap: u32, start: u32) InitError!*Queue {
        const need = bytesFor(cap) orelse return error.BadCapacity;
        if (mem.len < need) return error.TooSmall;
        if (@intFromPtr(mem.ptr) % mem_align != 0) return error.Misaligned;
        const q: *Queue = @ptrCast(@alignCast(mem.ptr));
        // Not concurrent: the memory is not shared with anyone until init returns.
        q.header = std.mem.zeroes(Header);
        q.header.version = version;
        q.header.capacity = cap;
        q.header.mask = cap - 1;
        q.header.enqueue_pos = start;
        q.header.dequeue_pos = start;
        const cells = q.cellPtr();
        var i: u32 = 0;
        while (i < cap) : (i += 1) {
            const p = start +% i;
            cells[p & (cap - 1)].sequence = p;
        }
        // release: whoever acquire-loads a valid magic sees the finished queue (postMessage orders it anyway).
        @atomicStore(u32, &q.header.magic, magic, .release);
        return q;
    }

    /// The queue in `mem`, without validation (hot path); `mem` must have been initialised.
    pub inline fn fromMem(mem: [*]u8) *Queue {
        return @ptrCast(@alignCast(mem));
    }

    inline fn cellPtr(q: *Queue) [*]Cell {
        const base: [*]u8 = @ptrCast(q);
        return @ptrCast(@alignCast(base + cells_offset));
    }

    pub inline fn capacity(q: *const Queue) u32 {
        return q.header.capacity;
    }

    /// One push attempt: `ok`, `full` (dequeue_pos confirms the ring is full) or `busy` (the cell is
    /// still held by a consumer between its CAS and its release: a spurious full).
    pub fn pushOnce(q: *Queue, value: u32) PushOnce {
        const mask = q.header.mask; // immutable after init
        const cells = q.cellPtr();
        // monotonic: only a guess at the next position; the sequence check and the CAS validate it.
        var pos = @atomicLoad(u32, &q.header.enqueue_pos, .monotonic);
        while (true) {
            const cell = &cells[pos & mask];
            // acquire: pairs with the consumer's release of this sequence, so its read of the old value is done before we overwrite it.
            const seq = @atomicLoad(u32, &cell.sequence, .acquire);
            const d = diff(seq, pos);
            if (d == 0) {
                // monotonic: the CAS only claims position `pos`; the value hand-off is ordered by the sequence release below.
                if (@cmpxchgWeak(u32, &q.header.enqueue_pos, pos, pos +% 1, .monotonic, .monotonic)) |actual| {
                    pos = actual;
                    continue;
                }
                // monotonic: ordered before the sequence release below; atomic only to keep shared memory race-free.
                @atomicStore(u32, &cell.value, value, .monotonic);
                // release: publishes the value to the consumer that acquire-loads sequence == pos + 1.
                @atomicStore(u32, &cell.sequence, pos +% 1, .release);
                return .ok;
            } else if (d < 0) {
                // monotonic: a snapshot suffices to tell truly full (every cell occupied) from a consumer mid-pop.
                const deq = @atomicLoad(u32, &q.header.dequeue_pos, .monotonic);
                return if (diff(pos, deq) >= @as(i32, @intCast(mask)) + 1) .full else .busy;
            } else {
                // monotonic: our position was stale; take a fresh guess.
                pos = @atomicLoad(u32, &q.header.enqueue_pos, .monotonic);
            }
        }
    }

    /// One pop attempt: a value, `empty` (enqueue_pos confirms nothing was pushed) or `busy` (a
    /// producer is between its CAS and its publish: a spurious empty).
    pub fn popOnce(q: *Queue) PopOnce {
        const mask = q.header.mask; // immutable after init
        const cells = q.cellPtr();
        // monotonic: only a guess at the next position; the sequence check and the CAS validate it.
        var pos = @atomicLoad(u32, &q.header.dequeue_pos, .monotonic);
        while (true) {
            const cell = &cells[pos & mask];
            // acquire: pairs with the producer's release of sequence == pos + 1, making its value visible.
            const seq = @atomicLoad(u32, &cell.sequence, .acquire);
            const d = diff(seq, pos +% 1);
            if (d == 0) {
                // monotonic: the CAS only claims position `pos`; the value was made visible by the acquire above.
                if (@cmpxchgWeak(u32, &q.header.dequeue_pos, pos, pos +% 1, .monotonic, .monotonic)) |actual| {
                    pos = actual;
                    continue;
                }
                // monotonic: already ordered after the producer's write by the sequence acquire above.
                const value = @atomicLoad(u32, &cell.value, .monotonic);
                // release: our read of the value happens-before the next producer (acquire on this sequence) overwrites it.
                @atomicStore(u32, &cell.sequence, pos +% mask +% 1, .release);
                return .{ .value = value };
            } else if (d < 0) {
                // acquire: keeps the caller's reads after an "empty" verdict (this load already follows the acquire sequence load); free on x86.
                const enq = @atomicLoad(u32, &q.header.enqueue_pos, .acquire);
                return if (diff(enq, pos) <= 0) .empty else .busy;
            } else {
                // monotonic: our position was stale; take a fresh guess.
                pos = @atomicLoad(u32, &q.header.dequeue_pos, .monotonic);
            }
        }
    }

    /// Push that never fails: retries a spurious full with backoff until it lands. The ring must have
    /// room for every value that can be outstanding (the pool sizes it for all slots).
    pub fn push(q: *Queue, value: u32) void {
        if (q.pushOnce(value) == .ok) return;
        var backoff: Backoff = .{};
        while (true) {
            backoff.snooze();
            if (q.pushOnce(value) == .ok) return;
        }
    }

    /// Push that reports a full ring: false if truly full, or if a consumer stays stuck mid-pop past
    /// the `busy_wait_limit_ns` backoff.
    pub fn tryPush(q: *Queue, value: u32) bool {
        var backoff: Backoff = .{};
        while (true) {
            switch (q.pushOnce(value)) {
                .ok => return true,
                .full => return false,
                .busy => {
                    if (backoff.exhausted()) return false;
                    backoff.snooze();
                },
            }
        }
    }

    /// Pop, or null if the queue is truly empty (or a producer stays stuck mid-push past the
    /// `busy_wait_limit_ns` backoff; see Concurrency note).
    pub fn pop(q: *Queue) ?u32 {
        var backoff: Backoff = .{};
        while (true) {
            switch (q.popOnce()) {
                .value => |v| return v,
                .empty => return null,
                .busy => {
                    if (backoff.exhausted()) return null;
                    backoff.snooze();
                },
            }
        }
    }

    /// Pop up to `max` values into `out`; stops at the first empty. Returns how many were popped.
    pub fn popBatch(q: *Queue, out: [*]u32, max: u32) u32 {
        var n: u32 = 0;
        while (n < max) : (n += 1) {
            out[n] = q.pop() orelse break;
        }
        return n;
    }

    /// Push `values[0..n)` in order, each bounded like `tryPush`; stops at the first value that does
    /// not fit and returns how many were pushed. A ring sized for every slot only fills up after a
    /// double release, so a short count is a caller bug to report, never a state to wait out.
    pub fn pushBatch(q: *Queue, values: [*]const u32, n: u32) u32 {
        var i: u32 = 0;
        while (i < n) : (i += 1) {
            if (!q.tryPush(values[i])) break;
        }
        return i;
    }

    /// Approximate number of queued values (a racy snapshot, clamped to [0, capacity]).
    pub fn len(q: *Queue) u32 {
        // monotonic: a statistic; dequeue_pos is read first so the later enqueue_pos is never behind it.
        const deq = @atomicLoad(u32, &q.header.dequeue_pos, .monotonic);
        // monotonic: as above.
        const enq = @atomicLoad(u32, &q.header.enqueue_pos, .monotonic);
        const d = diff(enq, deq);
        if (d <= 0) return 0;
        return @min(@as(u32, @intCast(d)), q.header.capacity);
    }
};

// ---------------------------------------------------------------- tests

const testing = std.testing;

fn testMem(comptime capacity: u32) type {
    return struct {
        buf: [cells_offset + capacity * @sizeOf(Cell)]u8 align(8) = undefined,
    };
}

test "layout constants equal layout.ts" {
    try testing.expectEqual(@as(u32, 0x5350_5131), layout.magic);
    try testing.expectEqual(@as(u32, 1), layout.version);
    try testing.expectEqual(@as(u32, 128), layout.cache_line_bytes);
    try testing.expectEqual(@as(u32, 8), layout.capacity_offset);
    try testing.expectEqual(@as(u32, 12), layout.mask_offset);
    try testing.expectEqual(@as(u32, 128), layout.enqueue_pos_offset);
    try testing.expectEqual(@as(u32, 256), layout.dequeue_pos_offset);
    try testing.expectEqual(@as(u32, 384), layout.cells_offset);
    try testing.expectEqual(@as(u32, 8), layout.cell_bytes);
    try testing.expectEqual(@as(u32, 0), layout.cell_sequence_offset);
    try testing.expectEqual(@as(u32, 4), layout.cell_value_offset);
}

test "bytesFor validates capacity and overflow" {
    try testing.expectEqual(@as(?u32, 384 + 2 * 8), bytesFor(2));
    try testing.expectEqual(@as(?u32, 384 + 1024 * 8), bytesFor(1024));
    try testing.expectEqual(@as(?u32, 384 + (1 << 28) * 8), bytesFor(1 << 28));
    try testing.expectEqual(@as(?u32, null), bytesFor(0));
    try testing.expectEqual(@as(?u32, null), bytesFor(1));
    try testing.expectEqual(@as(?u32, null), bytesFor(3));
    try testing.expectEqual(@as(?u32, null), bytesFor(1000));
    try testing.expectEqual(@as(?u32, null), bytesFor(1 << 29)); // 2^32 + 384 bytes overflows u32
    try testing.expectEqual(@as(?u32, null), bytesFor(1 << 30));
    try testing.expectEqual(@as(?u32, null), bytesFor(1 << 31));
}

test "init errors" {
    var m: testMem(16) = .{};
    try testing.expectError(error.BadCapacity, Queue.init(&m.buf, 0));
    try testing.expectError(error.BadCapacity, Queue.init(&m.buf, 1));
    try testing.expectError(error.BadCapacity, Queue.init(&m.buf, 12));
    try testing.expectError(error.TooSmall, Queue.init(&m.buf, 32));
    try testing.expectError(error.TooSmall, Queue.init(m.buf[0 .. m.buf.len - 1], 16));
    try testing.expectError(error.Misaligned, Queue.init(m.buf[4..], 8));
    try testing.expectError(error.Misaligned, Queue.init(m.buf[1..], 8));
    _ = try Queue.init(&m.buf, 16);
    _ = try Queue.init(m.buf[8..], 8);
}

test "init writes header, positions and sequences" {
    var m: testMem(8) = .{};
    @memset(&m.buf, 0xAA);
    const q = try Queue.init(&m.buf, 8);
    const words: [*]const u32 = @ptrCast(&m.buf);
    try testing.expectEqual(magic, words[0]);
    try testing.expectEqual(version, words[1]);
    try testing.expectEqual(@as(u32, 8), words[2]);
    try testing.expectEqual(@as(u32, 7), words[3]);
    try testing.expectEqual(@as(u32, 0), words[128 / 4]);
    try testing.expectEqual(@as(u32, 0), words[256 / 4]);
    for (0..8) |i| try testing.expectEqual(@as(u32, @intCast(i)), words[384 / 4 + 2 * i]);
    try testing.expectEqual(@as(u32, 0), q.len());
    try testing.expectEqual(@as(u32, 8), q.capacity());
}

test "FIFO order, empty, truly full" {
    var m: testMem(8) = .{};
    const q = try Queue.init(&m.buf, 8);
    try testing.expectEqual(@as(?u32, null), q.pop());
    try testing.expectEqual(PopOnce.empty, q.popOnce());
    for (0..8) |i| try testing.expect(q.tryPush(@intCast(100 + i)));
    try testing.expectEqual(@as(u32, 8), q.len());
    try testing.expect(!q.tryPush(999));
    try testing.expectEqual(PushOnce.full, q.pushOnce(999));
    for (0..8) |i| try testing.expectEqual(@as(?u32, @intCast(100 + i)), q.pop());
    try testing.expectEqual(@as(?u32, null), q.pop());
    // Several laps keep FIFO order.
    for (0..100) |lap| {
        for (0..5) |i| q.push(@intCast(lap * 10 + i));
        for (0..5) |i| try testing.expectEqual(@as(?u32, @intCast(lap * 10 + i)), q.pop());
    }
    try testing.expectEqual(@as(u32, 0), q.len());
}

test "capacity 2 (smallest) alternates correctly" {
    var m: testMem(2) = .{};
    const q = try Queue.init(&m.buf, 2);
    for (0..50) |i| {
        try testing.expect(q.tryPush(@intCast(i)));
        try testing.expect(q.tryPush(@intCast(i + 1000)));
        try testing.expect(!q.tryPush(7));
        try testing.expectEqual(@as(?u32, @intCast(i)), q.pop());
        try testing.expectEqual(@as(?u32, @intCast(i + 1000)), q.pop());
        try testing.expectEqual(@as(?u32, null), q.pop());
    }
}

test "wraparound across u32 max" {
    var m: testMem(8) = .{};
    const start: u32 = 0xFFFF_FFF0;
    const q = try Queue.initAt(&m.buf, 8, start);
    var next_in: u32 = 0;
    var next_out: u32 = 0;
    // 64 positions from 0xFFFF_FFF0: crosses the wrap with the ring empty, half full and full.
    while (next_out < 64) {
        const fill = (next_in % 3) + 1; // uneven batches
        var k: u32 = 0;
        while (k < fill and q.tryPush(next_in)) : (k += 1) next_in += 1;
        try testing.expect(q.len() <= 8);
        const drain = (next_out % 2) + 1;
        k = 0;
        while (k < drain) : (k += 1) {
            const v = q.pop() orelse break;
            try testing.expectEqual(next_out, v);
            next_out += 1;
        }
    }
    // Positions really wrapped.
    try testing.expect(q.header.enqueue_pos < start);
    try testing.expect(q.header.dequeue_pos < start);
    // Full ring straddling the wrap.
    const q2 = try Queue.initAt(&m.buf, 8, 0xFFFF_FFFC);
    for (0..8) |i| try testing.expect(q2.tryPush(@intCast(i)));
    try testing.expect(!q2.tryPush(8));
    try testing.expectEqual(@as(u32, 8), q2.len());
    for (0..8) |i| try testing.expectEqual(@as(?u32, @intCast(i)), q2.pop());
    try testing.expectEqual(@as(?u32, null), q2.pop());
    try testing.expectEqual(@as(u32, 0), q2.len());
}

test "batch push/pop, partial batch" {
    var m: testMem(16) = .{};
    const q = try Queue.init(&m.buf, 16);
    var out: [16]u32 = undefined;
    try testing.expectEqual(@as(u32, 0), q.popBatch(&out, 16));
    const vals = [_]u32{ 5, 6, 7, 8, 9 };
    try testing.expectEqual(@as(u32, 5), q.pushBatch(&vals, vals.len));
    try testing.expectEqual(@as(u32, 5), q.len());
    try testing.expectEqual(@as(u32, 3), q.popBatch(&out, 3));
    try testing.expectEqualSlices(u32, &.{ 5, 6, 7 }, out[0..3]);
    try testing.expectEqual(@as(u32, 2), q.popBatch(&out, 16)); // fewer available than asked
    try testing.expectEqualSlices(u32, &.{ 8, 9 }, out[0..2]);
    try testing.expectEqual(@as(u32, 0), q.popBatch(&out, 16));
    try testing.expectEqual(@as(u32, 0), q.popBatch(&out, 0));
    try testing.expectEqual(@as(u32, 0), q.pushBatch(&vals, 0));
    try testing.expectEqual(@as(u32, 0), q.len());
}

test "pushBatch into a ring that fills up stops there and reports how many it pushed" {
    var m: testMem(4) = .{};
    const q = try Queue.init(&m.buf, 4);
    const vals = [_]u32{ 1, 2, 3, 4, 5, 6 };
    var timer = try std.time.Timer.start();
    try testing.expectEqual(@as(u32, 4), q.pushBatch(&vals, vals.len));
    // A truly full ring is confirmed by dequeue_pos at once: no backoff, no wait.
    try testing.expect(timer.read() < busy_wait_limit_ns);
    try testing.expectEqual(@as(u32, 0), q.pushBatch(vals[4..].ptr, 2));
    for (0..4) |i| try testing.expectEqual(@as(?u32, @intCast(i + 1)), q.pop());
    try testing.expectEqual(@as(?u32, null), q.pop());
}

test "spurious empty and spurious full are reported as busy, not as empty/full" {
    var m: testMem(4) = .{};
    const q = try Queue.init(&m.buf, 4);
    // A producer that claimed position 0 but has not published yet.
    q.header.enqueue_pos = 1;
    try testing.expectEqual(PopOnce.busy, q.popOnce());
    q.cellPtr()[0].value = 42;
    q.cellPtr()[0].sequence = 1; // the producer publishes
    try testing.expectEqual(PopOnce{ .value = 42 }, q.popOnce());
    try testing.expectEqual(PopOnce.empty, q.popOnce());
    // Fill the ring, then a consumer claims position 1 but has not released the cell yet.
    for (0..4) |i| try testing.expect(q.tryPush(@intCast(i)));
    try testing.expectEqual(PushOnce.full, q.pushOnce(9));
    q.header.dequeue_pos +%= 1;
    try testing.expectEqual(PushOnce.busy, q.pushOnce(9));
    q.cellPtr()[1].sequence = 1 + 4; // the consumer releases
    try testing.expectEqual(PushOnce.ok, q.pushOnce(9));
    try testing.expectEqual(PushOnce.full, q.pushOnce(10));
}

test "bounded waits: a peer that died between CAS and publish does not hang pop or tryPush" {
    var m: testMem(4) = .{};
    const q = try Queue.init(&m.buf, 4);
    // A producer claimed position 0 and died before publishing: pop waits out the bound, then says empty.
    q.header.enqueue_pos = 1;
    var timer = try std.time.Timer.start();
    try testing.expectEqual(@as(?u32, null), q.pop());
    try testing.expect(timer.read() >= busy_wait_limit_ns);
    // Once it publishes, the value is there.
    q.cellPtr()[0].value = 7;
    q.cellPtr()[0].sequence = 1;
    try testing.expectEqual(@as(?u32, 7), q.pop());
    // Fill the ring; a consumer claimed position 1 and died before releasing its cell.
    for (0..4) |i| try testing.expect(q.tryPush(@intCast(i)));
    q.header.dequeue_pos +%= 1;
    timer.reset();
    try testing.expect(!q.tryPush(9));
    try testing.expect(timer.read() >= busy_wait_limit_ns);
}
