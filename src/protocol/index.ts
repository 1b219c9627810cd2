// The SOCKS5 codec's public surface: pure functions from bytes to results and back.
// Nothing here does I/O; src/proxy owns sockets, timers, buffering and logs.

export {
  AuthRequest,
  decodeAuthReply,
  decodeAuthRequest,
  encodeAuthReply,
  encodeAuthRequest,
} from "./auth.ts";
export {
  dialFailure,
  type Failure,
  type HandshakeFailureCode,
  handshakeFailure,
  type Outcome,
  replyForConnectError,
} from "./failures.ts";
export * from "./constants.ts";
export type { DialRequest, FrontProtocol, FrontStep } from "./front.ts";
export { type Decoded, ProtocolError, type ProtocolErrorCode } from "./errors.ts";
export {
  chooseMethod,
  decodeGreeting,
  decodeMethodSelection,
  encodeGreeting,
  encodeMethodSelection,
  type Greeting,
} from "./greeting.ts";
export { formatIPv4, formatIPv6, parseIPv4, parseIPv6 } from "./ip.ts";
export {
  addressFromHost,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  type SocksAddress,
  type SocksReply,
  type SocksRequest,
} from "./request.ts";
export { type PasswordCheck, Socks5Handshake } from "./socks-handshake.ts";
