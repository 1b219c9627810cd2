//! bench/wan/delay.zig: the WAN benchmark's userspace delay line. It creates two TUN devices (the
//! benchmark moves the far one into its network namespace) and copies every packet from one to the
//! other after a fixed delay, both ways, in order, through a bounded queue per direction. It stands in
//! for `tc qdisc add … netem delay`, which this kernel lacks. It is not a link emulator: no loss, no
//! jitter, no rate limit; a packet that finds its queue full is dropped and counted (tail drop).
//!
//!   sockpool-wan-delay --root-dev NAME --far-dev NAME [--delay-ms 10] [--queue-packets 2048]
//!                      [--parent-pid PID]
//!
//! Prints one JSON line when both devices exist ({"type":"ready",…}) and one with its counters when it
//! stops ({"type":"stopped",…}). Stops on SIGTERM, SIGINT or SIGHUP, and when its parent dies
//! (PR_SET_PDEATHSIG; --parent-pid closes the race of a parent that died before that was set). Both
//! devices are non-persistent: they vanish with this process, however it ends.
//!
//! Built by `zig build wan-delay` (ReleaseFast) into zig-out/bin; bench/wan/link.ts builds and runs it.

const std = @import("std");
const linux = std.os.linux;
const posix = std.posix;

// ── Limits ─────────────────────────────────────────────────────────────────────────────────────

/// Bytes per queued packet: above the TUN devices' MTU (1500, the kernel default, never raised
/// here). A read that fills a whole slot may have been truncated, so it is dropped as oversize.
const slot_bytes = 2048;
/// Default packets held per direction. 2048 × 1500 B in 10 ms is 300 MB/s per direction: far more
/// than a connection benchmark sends, so a drop means something is wrong, and is reported.
const queue_packets_default = 2048;
const queue_packets_max = 1 << 16;
/// Packets read from one device before the loop looks at due packets and the other device again.
const read_burst_max = 64;
const delay_ms_max = 10_000;

comptime {
    std.debug.assert(slot_bytes > 1500);
    std.debug.assert(std.math.isPowerOfTwo(queue_packets_default));
    std.debug.assert(queue_packets_default <= queue_packets_max);
}

// ── TUN ────────────────────────────────────────────────────────────────────────────────────────

/// _IOW('T', 202, int): attach this fd to a new (or existing) TUN/TAP device.
const TUNSETIFF: u32 = 0x400454ca;
const IFF_TUN: u16 = 0x0001;
/// No 4-byte packet-information header: each read or write is exactly one IP packet.
const IFF_NO_PI: u16 = 0x1000;

/// struct ifreq as TUNSETIFF reads it: the name, then ifr_flags (a short) in the 24-byte union.
const TunRequest = extern struct {
    name: [linux.IFNAMESIZE]u8,
    flags: u16,
    _pad: [22]u8 = [_]u8{0} ** 22,
};

comptime {
    std.debug.assert(@sizeOf(TunRequest) == @sizeOf(linux.ifreq));
}

/// Opens /dev/net/tun and creates the non-persistent device `name` (IFF_TUN | IFF_NO_PI),
/// non-blocking. The device lives as long as the returned fd.
fn openTun(name: []const u8) !posix.fd_t {
    if (name.len == 0 or name.len >= linux.IFNAMESIZE) return error.BadDeviceName;
    const fd = try posix.open("/dev/net/tun", .{ .ACCMODE = .RDWR, .NONBLOCK = true, .CLOEXEC = true }, 0);
    errdefer posix.close(fd);
    var request = TunRequest{ .name = [_]u8{0} ** linux.IFNAMESIZE, .flags = IFF_TUN | IFF_NO_PI };
    @memcpy(request.name[0..name.len], name);
    const rc = linux.ioctl(fd, TUNSETIFF, @intFromPtr(&request));
    switch (posix.errno(rc)) {
        .SUCCESS => return fd,
        .BUSY => return error.DeviceExists,
        .PERM, .ACCES => return error.PermissionDenied,
        else => return error.TunSetIffFailed,
    }
}

// ── One direction: a FIFO of packets, each due at its arrival time + the delay ─────────────────

const Direction = struct {
    from: posix.fd_t,
    to: posix.fd_t,
    /// capacity × slot_bytes; slot i holds packet i's bytes.
    data: []u8,
    length: []u16,
    due_ns: []u64,
    head: usize = 0,
    count: usize = 0,
    // Counters, reported when the line stops.
    forwarded: u64 = 0,
    dropped_full: u64 = 0,
    dropped_oversize: u64 = 0,
    write_errors: u64 = 0,
    /// The errno of the last refused write (EIO: the device was down), or 0.
    write_errno_last: u16 = 0,
    depth_max: usize = 0,

    fn init(allocator: std.mem.Allocator, from: posix.fd_t, to: posix.fd_t, packets: usize) !Direction {
        return .{
            .from = from,
            .to = to,
            .data = try allocator.alloc(u8, packets * slot_bytes),
            .length = try allocator.alloc(u16, packets),
            .due_ns = try allocator.alloc(u64, packets),
        };
    }

    fn capacity(self: *const Direction) usize {
        return self.length.len;
    }

    fn slot(self: *Direction, index: usize) []u8 {
        return self.data[index * slot_bytes ..][0..slot_bytes];
    }

    /// Reads up to read_burst_max packets from `from` into the tail. A packet that finds the queue
    /// full is still read (so the device's own queue cannot hold it back and add delay), then dropped.
    /// Returns false when the device is gone.
    fn readBurst(self: *Direction, scratch: []u8) bool {
        const arrived_ns = nowNs();
        var burst: usize = 0;
        while (burst < read_burst_max) : (burst += 1) {
            const full = self.count == self.capacity();
            const tail = (self.head + self.count) % self.capacity();
            const buffer = if (full) scratch else self.slot(tail);
            const rc = linux.read(self.from, buffer.ptr, buffer.len);
            switch (posix.errno(rc)) {
                .SUCCESS => {},
                .AGAIN => return true,
                .INTR => continue,
                // EBADFD/EIO/ENXIO: the device was deleted (its namespace went away).
                else => return false,
            }
            const bytes: usize = rc;
            if (bytes == 0) return false;
            if (bytes >= slot_bytes) {
                self.dropped_oversize += 1;
                continue;
            }
            if (full) {
                self.dropped_full += 1;
                continue;
            }
            self.length[tail] = @intCast(bytes);
            self.due_ns[tail] = arrived_ns + delay_ns;
            self.count += 1;
            self.depth_max = @max(self.depth_max, self.count);
        }
        return true;
    }

    /// Writes every packet due by `now_ns` to `to`, oldest first. A packet the kernel refuses
    /// (the far device is down for a moment) is counted and dropped, never retried out of order.
    fn writeDue(self: *Direction, now_ns: u64) void {
        while (self.count > 0 and self.due_ns[self.head] <= now_ns) {
            const packet = self.slot(self.head)[0..self.length[self.head]];
            while (true) {
                const rc = linux.write(self.to, packet.ptr, packet.len);
                switch (posix.errno(rc)) {
                    .SUCCESS => self.forwarded += 1,
                    .INTR => continue,
                    else => |err| {
                        self.write_errors += 1;
                        self.write_errno_last = @intFromEnum(err);
                    },
                }
                break;
            }
            self.head = (self.head + 1) % self.capacity();
            self.count -= 1;
        }
    }

    /// When the oldest packet is due, or null when the queue is empty.
    fn nextDueNs(self: *const Direction) ?u64 {
        return if (self.count == 0) null else self.due_ns[self.head];
    }
};

// ── Time, signals, output ──────────────────────────────────────────────────────────────────────

var delay_ns: u64 = 10 * std.time.ns_per_ms;

fn nowNs() u64 {
    const time = posix.clock_gettime(.MONOTONIC) catch unreachable; // MONOTONIC always exists on Linux
    return @as(u64, @intCast(time.sec)) * std.time.ns_per_s + @as(u64, @intCast(time.nsec));
}

fn say(comptime format: []const u8, args: anytype) void {
    var buffer: [1024]u8 = undefined;
    const line = std.fmt.bufPrint(&buffer, format ++ "\n", args) catch return;
    _ = posix.write(posix.STDOUT_FILENO, line) catch {};
}

fn fail(comptime format: []const u8, args: anytype) noreturn {
    var buffer: [1024]u8 = undefined;
    const line = std.fmt.bufPrint(&buffer, "sockpool-wan-delay: " ++ format ++ "\n", args) catch "sockpool-wan-delay: error\n";
    _ = posix.write(posix.STDERR_FILENO, line) catch {};
    std.process.exit(1);
}

const usage =
    "usage: sockpool-wan-delay --root-dev NAME --far-dev NAME [--delay-ms MS] [--queue-packets N] [--parent-pid PID]";

const Args = struct {
    root_dev: []const u8 = "",
    far_dev: []const u8 = "",
    delay_ms: f64 = 10,
    queue_packets: usize = queue_packets_default,
    parent_pid: ?linux.pid_t = null,
};

fn parseArgs() Args {
    var args = Args{};
    var iterator = std.process.args();
    _ = iterator.skip();
    while (iterator.next()) |flag| {
        const value = iterator.next() orelse fail("{s}: missing value\n{s}", .{ flag, usage });
        if (std.mem.eql(u8, flag, "--root-dev")) {
            args.root_dev = value;
        } else if (std.mem.eql(u8, flag, "--far-dev")) {
            args.far_dev = value;
        } else if (std.mem.eql(u8, flag, "--delay-ms")) {
            args.delay_ms = std.fmt.parseFloat(f64, value) catch fail("--delay-ms: expected a number, got \"{s}\"", .{value});
            if (!(args.delay_ms >= 0 and args.delay_ms <= delay_ms_max)) {
                fail("--delay-ms: expected 0 to {d}, got {s}", .{ delay_ms_max, value });
            }
        } else if (std.mem.eql(u8, flag, "--queue-packets")) {
            args.queue_packets = std.fmt.parseInt(usize, value, 10) catch fail("--queue-packets: expected an integer, got \"{s}\"", .{value});
            if (args.queue_packets < 1 or args.queue_packets > queue_packets_max) {
                fail("--queue-packets: expected 1 to {d}, got {s}", .{ queue_packets_max, value });
            }
        } else if (std.mem.eql(u8, flag, "--parent-pid")) {
            args.parent_pid = std.fmt.parseInt(linux.pid_t, value, 10) catch fail("--parent-pid: expected a pid, got \"{s}\"", .{value});
        } else {
            fail("unknown flag {s}\n{s}", .{ flag, usage });
        }
    }
    if (args.root_dev.len == 0 or args.far_dev.len == 0) fail("--root-dev and --far-dev are required\n{s}", .{usage});
    if (std.mem.eql(u8, args.root_dev, args.far_dev)) fail("--root-dev and --far-dev must differ", .{});
    return args;
}

/// SIGTERM, SIGINT and SIGHUP (and the parent-death signal, SIGTERM) are blocked and read from a
/// signalfd, so a stop request is just one more fd the loop polls: no handler, no EINTR race.
fn stopSignals() posix.fd_t {
    var mask = posix.sigemptyset();
    posix.sigaddset(&mask, linux.SIG.TERM);
    posix.sigaddset(&mask, linux.SIG.INT);
    posix.sigaddset(&mask, linux.SIG.HUP);
    posix.sigprocmask(linux.SIG.BLOCK, &mask, null);
    return posix.signalfd(-1, &mask, linux.SFD.NONBLOCK | linux.SFD.CLOEXEC) catch |err| fail("signalfd: {s}", .{@errorName(err)});
}

fn report(directions: []const Direction, reason: []const u8) void {
    const out = directions[0];
    const back = directions[1];
    say(
        "{{\"type\":\"stopped\",\"reason\":\"{s}\",\"delay_ms\":{d}," ++
            "\"to_far\":{{\"forwarded\":{d},\"dropped_full\":{d},\"dropped_oversize\":{d},\"write_errors\":{d},\"write_errno_last\":{d},\"depth_max\":{d}}}," ++
            "\"to_root\":{{\"forwarded\":{d},\"dropped_full\":{d},\"dropped_oversize\":{d},\"write_errors\":{d},\"write_errno_last\":{d},\"depth_max\":{d}}}}}",
        .{
            reason,                @as(f64, @floatFromInt(delay_ns)) / std.time.ns_per_ms,
            out.forwarded,         out.dropped_full,
            out.dropped_oversize,  out.write_errors,
            out.write_errno_last,  out.depth_max,
            back.forwarded,        back.dropped_full,
            back.dropped_oversize, back.write_errors,
            back.write_errno_last, back.depth_max,
        },
    );
}

// ── Main loop ──────────────────────────────────────────────────────────────────────────────────

pub fn main() void {
    const args = parseArgs();
    delay_ns = @intFromFloat(args.delay_ms * std.time.ns_per_ms);

    const signals = stopSignals();
    _ = posix.prctl(.SET_PDEATHSIG, .{linux.SIG.TERM}) catch |err| fail("prctl(PR_SET_PDEATHSIG): {s}", .{@errorName(err)});
    if (args.parent_pid) |parent| {
        if (linux.getppid() != parent) fail("parent {d} is gone", .{parent});
    }

    const root = openTun(args.root_dev) catch |err| fail("cannot create TUN device {s}: {s}", .{ args.root_dev, @errorName(err) });
    const far = openTun(args.far_dev) catch |err| fail("cannot create TUN device {s}: {s}", .{ args.far_dev, @errorName(err) });

    const allocator = std.heap.page_allocator;
    // [0] root → far ("to_far" in the counters), [1] far → root ("to_root").
    var directions = [2]Direction{
        Direction.init(allocator, root, far, args.queue_packets) catch fail("out of memory for the queues", .{}),
        Direction.init(allocator, far, root, args.queue_packets) catch fail("out of memory for the queues", .{}),
    };
    var scratch: [slot_bytes]u8 = undefined;

    say("{{\"type\":\"ready\",\"root_dev\":\"{s}\",\"far_dev\":\"{s}\",\"delay_ms\":{d},\"queue_packets\":{d}}}", .{
        args.root_dev, args.far_dev, args.delay_ms, args.queue_packets,
    });

    var fds = [3]posix.pollfd{
        .{ .fd = root, .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = far, .events = linux.POLL.IN, .revents = 0 },
        .{ .fd = signals, .events = linux.POLL.IN, .revents = 0 },
    };
    const reason: []const u8 = while (true) {
        // 1. Send whatever is due, then sleep until the next packet is due or one arrives.
        const now_ns = nowNs();
        var next_ns: ?u64 = null;
        for (&directions) |*direction| {
            direction.writeDue(now_ns);
            if (direction.nextDueNs()) |due| next_ns = if (next_ns) |next| @min(next, due) else due;
        }
        var timeout: posix.timespec = undefined;
        const timeout_ptr: ?*const posix.timespec = if (next_ns) |next| blk: {
            const wait_ns = next -| nowNs();
            timeout = .{ .sec = @intCast(wait_ns / std.time.ns_per_s), .nsec = @intCast(wait_ns % std.time.ns_per_s) };
            break :blk &timeout;
        } else null;
        _ = posix.ppoll(&fds, timeout_ptr, null) catch |err| switch (err) {
            error.SignalInterrupt => continue,
            else => break "ppoll failed",
        };

        // 2. A stop signal ends the loop; so does a device that went away.
        if (fds[2].revents != 0) break "signal";
        const gone = linux.POLL.ERR | linux.POLL.HUP | linux.POLL.NVAL;
        if ((fds[0].revents | fds[1].revents) & gone != 0) break "device gone";

        // 3. Queue what arrived, stamped with its arrival time.
        if (fds[0].revents & linux.POLL.IN != 0 and !directions[0].readBurst(&scratch)) break "device gone";
        if (fds[1].revents & linux.POLL.IN != 0 and !directions[1].readBurst(&scratch)) break "device gone";
    };
    report(&directions, reason);
    // Exiting closes both fds, and the non-persistent devices go with them.
}
