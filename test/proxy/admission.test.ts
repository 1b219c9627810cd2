// Admission under connections_max: the count taken and given back in one place, whatever throws.

import { expect, test } from "bun:test";
import {
  Admission,
  openConnectionsBytes,
  openConnectionsTotal,
  reclaimConnections,
} from "../../src/proxy/admission.ts";

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

test("per-Worker words: a dead Worker's share is subtracted from the total exactly, once", () => {
  const open = new Int32Array(new SharedArrayBuffer(openConnectionsBytes(2)));
  const dead = new Admission(open, 10, 0);
  const alive = new Admission(open, 10, 1);
  for (let i = 0; i < 3; i++) dead.admit(() => i);
  for (let i = 0; i < 2; i++) alive.admit(() => i);
  alive.leave();
  // A refusal and a create that throws leave the Worker's own word as it was.
  const full = new Admission(open, 4, 0);
  expect(full.admit(() => "over")).toBeNull();
  expect(() =>
    dead.admit(() => {
      throw new Error("boom");
    }),
  ).toThrow("boom");
  expect(openConnectionsTotal(open)).toBe(4);

  expect(reclaimConnections(open, 0)).toBe(3);
  expect(openConnectionsTotal(open)).toBe(1); // the live Worker's one connection
  expect(reclaimConnections(open, 0)).toBe(0);
  expect(openConnectionsTotal(open)).toBe(1);
  alive.leave();
  expect(openConnectionsTotal(open)).toBe(0);
});

test("an Admission for a Worker the memory has no word for is refused at construction", () => {
  const open = new Int32Array(new SharedArrayBuffer(openConnectionsBytes(1)));
  expect(() => new Admission(open, 10, 1)).toThrow(/too few for Worker 1/);
  expect(() => new Admission(counter(), 10, 0)).toThrow(RangeError);
});
