// Admission under connections_max: the count taken and given back in one place, whatever throws.

import { expect, test } from "bun:test";
import { Admission } from "../../src/proxy/admission.ts";

function counter(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4));
}

test("admits up to connections_max, refuses the next without holding a place", () => {
  const open = counter();
  const admission = new Admission(open, 2);
  expect(admission.admit(() => "a")).toBe("a");
  expect(admission.admit(() => "b")).toBe("b");
  expect(admission.admit(() => "c")).toBeNull();
  expect({ open: open[0], refused: admission.refused }).toEqual({ open: 2, refused: 1 });
  admission.leave();
  expect(admission.admit(() => "d")).toBe("d");
  expect(open[0]).toBe(2);
});

test("a place taken for a connection whose opening throws is given back, and the error goes on", () => {
  const open = counter();
  const admission = new Admission(open, 1);
  const boom = new TypeError("remoteAddress is undefined");
  expect(() =>
    admission.admit(() => {
      throw boom;
    }),
  ).toThrow(boom);
  expect(open[0]).toBe(0);
  expect(admission.admit(() => "next")).toBe("next");
});

test("the count is shared: two admissions over one word honour one bound", () => {
  const open = counter();
  const workerA = new Admission(open, 3);
  const workerB = new Admission(open, 3);
  const admitted = [workerA, workerB, workerA, workerB].map((admission) =>
    admission.admit(() => 1),
  );
  expect(admitted).toEqual([1, 1, 1, null]);
  expect(open[0]).toBe(3);
});
