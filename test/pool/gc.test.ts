// Regression: the native ring once kept only ptr(sab), so a full GC freed the queue memory under it
// (a proxy under load segfaulted; here the pool silently handed out nothing). Run in a subprocess
// so that a crash fails this test instead of the whole run.

import { expect, test } from "bun:test";
import { runBun } from "../support/spawn.ts";

const SLOTS = 1 << 16;
const ROUNDS = 20;
const GARBAGE_PER_ROUND = 200;

test.each(["queue", "local"])(
  "the %s pool survives full GCs with no other reference to its memory",
  async (strategy) => {
    const { code, stdout, stderr } = await runBun(
      new URL("./fixtures/gc-native.ts", import.meta.url),
      [strategy],
    );
    expect({ code, stderr }).toEqual({ code: 0, stderr: "" });
    // Every round must cycle every slot: a freed ring hands out none (or crashes).
    expect(stdout.trim()).toBe(`ok ${strategy} ${ROUNDS * (SLOTS + GARBAGE_PER_ROUND)} native`);
  },
);
