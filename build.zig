//! build.zig: builds libsockpool.so (the lock-free slot queue for bun:ffi) and runs its Zig unit tests; deliberately not the TypeScript build or test runner (package.json).
//!
//!   zig build                 -> zig-out/lib/libsockpool.so   (ReleaseFast unless -Doptimize=...)
//!   zig build test            -> all Zig tests under ReleaseSafe (override with -Dtest-optimize=...)
//!   zig build wan-delay       -> zig-out/bin/sockpool-wan-delay (the WAN benchmark's delay line; not
//!                                part of the default install, which stays the library alone)

const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.option(std.builtin.OptimizeMode, "optimize", "Optimization mode of libsockpool (default ReleaseFast)") orelse .ReleaseFast;
    const test_optimize = b.option(std.builtin.OptimizeMode, "test-optimize", "Optimization mode of the Zig tests (default ReleaseSafe)") orelse .ReleaseSafe;

    // The library: c_api.zig is the root (the exports); it imports queue.zig. No libc.
    const lib = b.addLibrary(.{
        .linkage = .dynamic,
        .name = "sockpool",
        .root_module = b.createModule(.{
            .root_source_file = b.path("ffi/c_api.zig"),
            .target = target,
            .optimize = optimize,
            .link_libc = false,
        }),
    });
    b.installArtifact(lib);

    // One test binary: c_api.zig's tests pull in queue.zig's and stress_test.zig's.
    const tests = b.addTest(.{
        .root_module = b.createModule(.{
            .root_source_file = b.path("ffi/c_api.zig"),
            .target = target,
            .optimize = test_optimize,
        }),
    });
    const run_tests = b.addRunArtifact(tests);
    // Stress tests pick a fresh seed each run; never skip them because a cached run passed.
    run_tests.has_side_effects = true;
    const test_step = b.step("test", "Run the Zig unit and stress tests (ReleaseSafe)");
    test_step.dependOn(&run_tests.step);

    // The WAN benchmark's userspace delay line (bench/wan/delay.zig): a separate step, so the default
    // install and the library's build stay exactly as they are. Always ReleaseFast: it is a benchmark
    // tool, and a debug build would add its own latency to the link it emulates.
    const delay = b.addExecutable(.{
        .name = "sockpool-wan-delay",
        .root_module = b.createModule(.{
            .root_source_file = b.path("bench/wan/delay.zig"),
            .target = target,
            .optimize = .ReleaseFast,
            .link_libc = false,
        }),
    });
    const wan_delay_step = b.step("wan-delay", "Build the WAN benchmark's delay line into zig-out/bin");
    wan_delay_step.dependOn(&b.addInstallArtifact(delay, .{}).step);
}
