// The SOCKS5 codec's public surface: pure functions from bytes to results and back.
// Nothing here does I/O; src/proxy owns sockets, timers, buffering and logs.

export {
  AuthRequest,
  decodeAuthReply,
  decodeAuthRequest,
  encodeAuthReply,
  encodeAuthRequest,
} from "./auth.ts";
export * from "./constants.ts";
export { type Decoded, ProtocolError, type ProtocolErrorCode } from "./errors.ts";
export {
  dialFailure,
  type Failure,
  type HandshakeFailureCode,
  handshakeFailure,
  type Outcome,
  replyForConnectError,
} from "./failures.ts";
export type {
  AnswerCode,
  DialRequest,
  FrontProtocol,
  FrontStep,
  LoginVerdict,
  PasswordCheck,
} from "./front.ts";
export {
  chooseMethod,
  decodeGreeting,
  decodeMethodSelection,
  encodeGreeting,
  encodeMethodSelection,
  type Greeting,
} from "./greeting.ts";
export { formatHostPort, type HostPort, parseHostPort } from "./host-port.ts";
export {
  formatIPv4,
  formatIPv6,
  type IPLiteral,
  parseIPLiteral,
  parseIPv4,
  parseIPv6,
} from "./ip.ts";
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
export { AutoFront } from "./auto-front.ts";
export { HttpConnectFront } from "./http-connect.ts";
export { Socks5Handshake } from "./socks-handshake.ts";
