// Opens test sockets as Conns: connectTcp (client), listenTcp (server). Not target behaviours (targets.ts).

import type { Socket, TCPSocketListener } from "bun";
import { Conn, type Holder, openConns } from "./conn.ts";
import { DEADLINE_MS, withDeadline } from "./wait.ts";

const connHandlers = {
  data(socket: Socket<Holder>, chunk: Uint8Array) {
    socket.data.conn?.handleData(chunk);
  },
  drain(socket: Socket<Holder>) {
    socket.data.conn?.handleDrain();
  },
  end(socket: Socket<Holder>) {
    socket.data.conn?.handleEnd();
  },
  close(socket: Socket<Holder>, error?: Error) {
    socket.data.conn?.handleClose(error);
  },
  error(socket: Socket<Holder>, error: Error) {
    const conn = socket.data.conn;
    if (conn && !conn.error) conn.error = error;
  },
};

/** Bun's options for either side: half-open allowed, each socket's Conn made by `open`. */
function socketOptions(host: string, port: number, open: (socket: Socket<Holder>) => void) {
  return {
    hostname: host,
    port,
    allowHalfOpen: true,
    data: { conn: null },
    socket: { ...connHandlers, open, connectError() {} },
  };
}

/** Connects a raw TCP client (half-open allowed). Rejects when the connection is refused. */
export async function connectTcp(host: string, port: number): Promise<Conn> {
  const socket = await withDeadline(
    Bun.connect<Holder>(
      socketOptions(host, port, (socket) => {
        socket.data.conn = new Conn(socket);
      }),
    ),
    DEADLINE_MS,
    `a TCP connection to ${host}:${port}`,
  );
  const opened = socket.data.conn;
  if (opened === null) throw new Error(`connected to ${host}:${port} but open never ran`);
  openConns.add(opened);
  return opened;
}

/** Listens on `host:port` (0: any free port); every accepted socket becomes a Conn for `onConn`. */
export function listenTcp(
  host: string,
  port: number,
  onConn: (conn: Conn) => void,
): TCPSocketListener<Holder> {
  return Bun.listen<Holder>(
    socketOptions(host, port, (socket) => {
      const conn = new Conn(socket);
      socket.data = { conn }; // the listener's data object is shared; give each socket its own
      openConns.add(conn);
      onConn(conn);
    }),
  );
}
