// Who an upstream socket reports to: the Connection relaying it, or, while it waits warm in the
// upstream pool, its idle holder. One handler table for both, so a pooled socket is handed to a
// Connection by re-pointing `socket.data` (Bun reads it on every event; checked on Bun 1.4.5) and
// its later events reach the Connection exactly as after a fresh connect. Not the relay itself.

import type { Socket, SocketHandler } from "bun";

/** The events of an upstream socket, as its current owner handles them. */
export interface UpstreamOwner {
  onUpstreamData(upstream: Socket<UpstreamOwner>, chunk: Uint8Array): void;
  onUpstreamDrain(): void;
  /** The upstream's FIN. */
  onUpstreamEnd(): void;
  /** Closed without an error (a FIN seen as close, or our own end()). */
  onUpstreamClosed(): void;
  /** A socket error (a reset arrives only this way), or an exception on a socket path. */
  failed(error: Error): void;
}

/** Events of an upstream socket: it belongs to `socket.data` from the moment Bun.connect runs. */
export const upstreamEvents: SocketHandler<UpstreamOwner> = {
  data: (socket, chunk) => socket.data.onUpstreamData(socket, chunk),
  drain: (socket) => socket.data.onUpstreamDrain(),
  end: (socket) => socket.data.onUpstreamEnd(),
  close: (socket, error) => (error ? socket.data.failed(error) : socket.data.onUpstreamClosed()),
  error: (socket, error) => socket.data.failed(error),
};
