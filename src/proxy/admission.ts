// Admission at accept: one place under server.connections_max, counted across every Worker in one
// Int32 of shared memory. The increment and its undo live here and nowhere else, so whatever throws
// while a connection is being opened, the count is restored. Not access control (rules about who
// may go where run between the front protocol and the dial, once there are any).
//
// Concurrency note: Atomics.add reserves first and backs out when over the bound, so under a race
// the count may read up to one per racing thread above connections_max for an instant; no more
// than connections_max connections are ever admitted.

export class Admission {
  /** Clients refused because connections_max was reached, on this thread. */
  refused = 0;
  private readonly open: Int32Array;
  private readonly max: number;

  constructor(open: Int32Array, connectionsMax: number) {
    this.open = open;
    this.max = connectionsMax;
  }

  /** Runs `create` holding one place and returns what it made, or null (nothing held) when
   *  connections_max is reached. If `create` throws, the place is returned and the error goes on. */
  admit<T>(create: () => T): T | null {
    if (Atomics.add(this.open, 0, 1) >= this.max) {
      Atomics.sub(this.open, 0, 1);
      this.refused++;
      return null;
    }
    try {
      return create();
    } catch (error) {
      Atomics.sub(this.open, 0, 1);
      throw error;
    }
  }

  /** Returns the place of a connection admitted earlier. */
  leave(): void {
    Atomics.sub(this.open, 0, 1);
  }
}
