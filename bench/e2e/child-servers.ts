// The targets of the end-to-end benchmark, run as their OWN process (so their memory and CPU are
// not the proxy's):
//   echo        echoes, keeps the connection (idle test);
//   echo-close  echoes PAYLOAD_BYTES, then closes FIRST (rate test): TIME_WAIT then stays on the
//               listening side, instead of tying up one ephemeral port per connection for 60 s
//               (28k of them in all), which a 5 s rate test at 10k conn/s would exhaust;
//   bulk        sends `streamBytes` to every connection as fast as the kernel takes them, then
//               waits for the client to close (slow readers);
//   udp echo    sends every datagram back to where it came from (UDP section); one the kernel
//               will not take (send buffer full) is dropped, and the client counts it lost.
// Not iperf3 (started separately). Prints {"type":"ready",...} with the ports. stdin commands:
// "stats" (bytes the bulk server handed to the kernel), "close-echo" (close every echo
// connection, server first, for the same TIME_WAIT reason). Exits when stdin ends.
//
//   bun bench/e2e/child-servers.ts STREAM_BYTES

import type { Socket } from "bun";
import { PAYLOAD_BYTES, type ServersMessage } from "./protocol.ts";

const BULK_CHUNK_BYTES = 256 * 1024;

interface EchoState {
  /** Bytes the kernel did not take yet, in order. Bounded by what the client sent (64 B). */
  pending: Uint8Array[];
  echoed: number;
  /** Close once PAYLOAD_BYTES are echoed (the echo-close listener). */
  closeAfter: boolean;
}

interface BulkState {
  sent: number;
}

function flushEcho(socket: Socket<EchoState>): void {
  const state = socket.data;
  while (state.pending.length > 0) {
    const chunk = state.pending[0]!;
    const written = socket.write(chunk);
    if (written < 0) return;
    state.echoed += written;
    if (written < chunk.length) {
      state.pending[0] = chunk.subarray(written);
      return;
    }
    state.pending.shift();
  }
  if (state.closeAfter && state.echoed >= PAYLOAD_BYTES) socket.end();
}

async function main(streamBytes: number): Promise<void> {
  let echoConnections = 0;
  let bulkConnections = 0;
  let bulkSentBytes = 0;

  const echoSockets = new Set<Socket<EchoState>>();
  const echoListener = (closeAfter: boolean) =>
    Bun.listen<EchoState>({
      hostname: "127.0.0.1",
      port: 0,
      data: { pending: [], echoed: 0, closeAfter },
      socket: {
        open(socket) {
          // The listener's data object is shared: give each socket its own.
          socket.data = { pending: [], echoed: 0, closeAfter };
          echoSockets.add(socket);
          echoConnections++;
        },
        data(socket, chunk) {
          socket.data.pending.push(chunk);
          flushEcho(socket);
        },
        drain: flushEcho,
        close(socket) {
          echoSockets.delete(socket);
          echoConnections--;
        },
        error() {},
      },
    });
  const echo = echoListener(false);
  const echoClose = echoListener(true);

  const block = new Uint8Array(BULK_CHUNK_BYTES).fill(0x5a);
  const pump = (socket: Socket<BulkState>) => {
    const state = socket.data;
    while (state.sent < streamBytes) {
      const length = Math.min(BULK_CHUNK_BYTES, streamBytes - state.sent);
      const written = socket.write(block, 0, length);
      if (written <= 0) return; // full (drain resumes) or closed
      state.sent += written;
      bulkSentBytes += written;
    }
  };
  const bulk = Bun.listen<BulkState>({
    hostname: "127.0.0.1",
    port: 0,
    data: { sent: 0 },
    socket: {
      open(socket) {
        socket.data = { sent: 0 };
        bulkConnections++;
        pump(socket);
      },
      drain: pump,
      data() {},
      close() {
        bulkConnections--;
      },
      error() {},
    },
  });

  const udpEcho = await Bun.udpSocket({
    hostname: "127.0.0.1",
    port: 0,
    binaryType: "uint8array",
    socket: {
      data(socket, data, port, address) {
        socket.send(data, port, address);
      },
    },
  });

  const say = (message: ServersMessage) => process.stdout.write(`${JSON.stringify(message)}\n`);
  say({
    type: "ready",
    echoPort: echo.port,
    closePort: echoClose.port,
    bulkPort: bulk.port,
    udpEchoPort: udpEcho.port,
  });

  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of Bun.stdin.stream()) {
      for (const line of decoder.decode(chunk).split("\n")) {
        if (line.trim() === "stats") {
          say({ type: "stats", bulkSentBytes, bulkConnections, echoConnections });
        } else if (line.trim() === "close-echo") {
          const closed = echoSockets.size;
          for (const socket of echoSockets) socket.end();
          say({ type: "closed-echo", closed });
        }
      }
    }
    echo.stop(true);
    echoClose.stop(true);
    bulk.stop(true);
    udpEcho.close();
    process.exit(0);
  })();
}

if (import.meta.main) {
  const streamBytes = Number(Bun.argv[2]);
  if (!Number.isSafeInteger(streamBytes) || streamBytes < 1) {
    console.error(
      "usage: bun bench/e2e/child-servers.ts STREAM_BYTES (started by bench/e2e/main.ts)",
    );
    process.exit(2);
  }
  main(streamBytes).catch((error: unknown) => {
    console.error(`e2e-servers: ${error instanceof Error ? error.stack : String(error)}`);
    process.exit(1);
  });
}
