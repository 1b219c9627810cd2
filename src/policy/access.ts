// Access rules: which client may reach which destination, decided between the front protocol and
// the dial. Rules are compiled once from config into plain predicates (sets, byte compares, port
// ranges), then walked in order, first match wins. Not the dial (it asks here twice: before
// resolving a name, and for each address the name resolves to) and not logging.
//
//   1. the configured rules, in order: a matching deny denies; a matching allow allows, except
//      that an allow naming no destination (no `destinations`, no `domains`) does not open the
//      built-in denials of step 2 (a broad "allow these clients" must not open the metadata
//      service by accident)
//   2. built-in denials: the proxy's own listen addresses (a loop), link-local networks and the
//      cloud metadata addresses
//   3. access.default
//
// Domains are matched as the client wrote them, before resolution; destination networks against
// the address, after it. A name that resolves to a denied address is denied: there is no bypass by
// naming it.

import { networkInterfaces } from "node:os";
import { parseIPLiteral } from "../protocol/ip.ts";
import { canonicalAddress, inNetwork, type Network, parseNetwork } from "./network.ts";

/** An address as the rules compare it (IPv4-mapped IPv6 already unwrapped). */
export type Address = ReturnType<typeof canonicalAddress>;

export interface RuleConfig {
  readonly name?: string | undefined;
  readonly action: "allow" | "deny";
  readonly clients?: readonly string[] | undefined;
  readonly users?: readonly string[] | undefined;
  readonly destinations?: readonly string[] | undefined;
  readonly domains?: readonly string[] | undefined;
  readonly ports?: readonly (number | string)[] | undefined;
  readonly listeners?: readonly string[] | undefined;
}

export interface AccessConfig {
  readonly default: "allow" | "deny";
  readonly rules: readonly RuleConfig[];
}

/** One connection's request, as the rules see it. */
export interface AccessRequest {
  /** The client's IP address as Bun gives it; undefined when Bun gave none. */
  readonly client: string | undefined;
  /** The authenticated username, if the front protocol has one. */
  readonly user: string | undefined;
  /** The destination as the client asked for it: a domain or an IP literal. */
  readonly host: string;
  readonly port: number;
  /** The listen address as configured (e.g. "127.0.0.1:1080"). */
  readonly listener: string;
}

/** A request parsed once, so each rule only compares. */
export interface PreparedRequest {
  readonly request: AccessRequest;
  readonly client: Address | null;
  /** Lower-case, without a trailing dot; null when the host is an IP literal. */
  readonly domain: string | null;
  /** The destination when the client gave an IP literal; null for a domain (resolve first). */
  readonly literal: Address | null;
}

export type Verdict = { readonly allow: true } | { readonly allow: false; readonly rule: string };

const ALLOW: Verdict = { allow: true };

interface Rule {
  readonly label: string;
  readonly allow: boolean;
  readonly namesDestination: boolean;
  readonly clients: readonly Network[] | null;
  readonly users: ReadonlySet<string> | null;
  readonly destinations: readonly Network[] | null;
  readonly exactDomains: ReadonlySet<string> | null;
  readonly domainSuffixes: readonly string[] | null; // ".example.com" for "*.example.com"
  readonly portRanges: readonly (readonly [number, number])[] | null;
  readonly listeners: ReadonlySet<string> | null;
  /** Built-in denials of the proxy's own addresses apply to one port only. */
  readonly port?: number;
}

/** The cloud metadata services: AWS (IPv6), Alibaba, Azure's wire server. 169.254.169.254 (AWS,
 *  GCP, Azure IMDS, …) is link-local and denied as such. */
const METADATA_NETWORKS = ["fd00:ec2::254", "100.100.100.200", "168.63.129.16"];
const LINK_LOCAL_NETWORKS = ["169.254.0.0/16", "fe80::/10"];
const LOOPBACK_NETWORKS = ["127.0.0.0/8", "::1"];

function networks(texts: readonly string[]): Network[] {
  return texts.map((text) => {
    const network = parseNetwork(text);
    if (network === null) throw new Error(`assert: a validated network parses: ${text}`);
    return network;
  });
}

function normalizeDomain(host: string): string {
  const lower = host.toLowerCase();
  return lower.endsWith(".") ? lower.slice(0, -1) : lower;
}

/** "80" → [80, 80]; "8000-8999" → [8000, 8999]. The config has validated the text. */
function portRange(entry: number | string): [number, number] {
  if (typeof entry === "number") return [entry, entry];
  const [low, high = low] = entry.split("-").map(Number);
  return [low, high];
}

function compileRule(config: RuleConfig, index: number): Rule {
  const domains = config.domains?.map(normalizeDomain) ?? null;
  return {
    label: config.name ?? `access.rules[${index}]`,
    allow: config.action === "allow",
    namesDestination: config.destinations !== undefined || config.domains !== undefined,
    clients: config.clients ? networks(config.clients) : null,
    users: config.users ? new Set(config.users) : null,
    destinations: config.destinations ? networks(config.destinations) : null,
    exactDomains: domains ? new Set(domains.filter((domain) => !domain.startsWith("*."))) : null,
    domainSuffixes: domains
      ? domains.filter((domain) => domain.startsWith("*.")).map((domain) => domain.slice(1))
      : null,
    portRanges: config.ports ? config.ports.map(portRange) : null,
    listeners: config.listeners ? new Set(config.listeners) : null,
  };
}

function denial(label: string, texts: readonly string[], port?: number): Rule {
  return {
    label,
    allow: false,
    namesDestination: true,
    clients: null,
    users: null,
    destinations: networks(texts),
    exactDomains: null,
    domainSuffixes: null,
    portRanges: null,
    listeners: null,
    ...(port === undefined ? {} : { port }),
  };
}

/** Every address this machine answers on, for a listener bound to 0.0.0.0 or ::. */
function localAddresses(): string[] {
  const found = [...LOOPBACK_NETWORKS];
  for (const entries of Object.values(networkInterfaces())) {
    for (const entry of entries ?? []) found.push(entry.address.split("%")[0]);
  }
  return found;
}

/** The addresses a listener accepts on; a name other than localhost cannot be known here. */
function listenerAddresses(host: string): string[] {
  if (host.toLowerCase() === "localhost") return LOOPBACK_NETWORKS;
  const literal = parseIPLiteral(host);
  if (literal === null) return [];
  return literal.bytes.every((byte) => byte === 0) ? localAddresses() : [host.split("%")[0]];
}

export class AccessPolicy {
  private readonly rules: readonly Rule[];
  private readonly builtins: readonly Rule[];
  private readonly defaultVerdict: Verdict;

  /** `listening`: this proxy's own listeners (host and bound port), denied as destinations. */
  constructor(config: AccessConfig, listening: readonly { host: string; port: number }[]) {
    this.rules = config.rules.map(compileRule);
    this.builtins = [
      ...listening.map(({ host, port }) => denial("builtin:self", listenerAddresses(host), port)),
      denial("builtin:metadata", METADATA_NETWORKS),
      denial("builtin:link-local", LINK_LOCAL_NETWORKS),
    ];
    this.defaultVerdict =
      config.default === "allow" ? ALLOW : { allow: false, rule: "access.default" };
  }

  prepare(request: AccessRequest): PreparedRequest {
    const client = request.client === undefined ? null : parseIPLiteral(request.client);
    const literal = parseIPLiteral(request.host);
    return {
      request,
      client: client === null ? null : canonicalAddress(client),
      domain: literal === null ? normalizeDomain(request.host) : null,
      literal: literal === null ? null : canonicalAddress(literal),
    };
  }

  /** The verdict for `address` (null: not known yet); null back when it depends on the address. */
  decide(prepared: PreparedRequest, address: Address | null = prepared.literal): Verdict | null {
    for (const rule of this.rules) {
      const matched = matches(rule, prepared, address);
      if (matched === null) return null;
      if (!matched) continue;
      if (!rule.allow) return { allow: false, rule: rule.label };
      return rule.namesDestination ? ALLOW : (this.builtinDenial(prepared, address) ?? ALLOW);
    }
    const builtin = this.builtinDenial(prepared, address);
    return builtin === undefined ? this.defaultVerdict : builtin;
  }

  /** The verdict for one resolved address (text from the resolver); an address that does not
   *  parse is denied, so a surprise from the resolver fails closed. */
  decideAddress(prepared: PreparedRequest, address: string): Verdict {
    const literal = parseIPLiteral(address);
    if (literal === null) return { allow: false, rule: "builtin:unparsable-address" };
    const verdict = this.decide(prepared, canonicalAddress(literal));
    if (verdict === null) throw new Error("assert: a verdict with the address known is never null");
    return verdict;
  }

  /** Whether the upstream pool may open a warm connection to `address` (one address `host`
   *  resolved to) on no client's behalf. Only the client-agnostic part of the rules decides: the
   *  built-in denials always (the proxy itself, link-local, metadata are never pre-connected, even
   *  where a rule opens them to some client), and the first rule naming no client, user or
   *  listener that matches. Rules about clients are left to the take, which asks decide() for the
   *  client in hand; so is access.default. */
  allowsWarmConnect(host: string, port: number, address: string): boolean {
    const literal = parseIPLiteral(address);
    if (literal === null) return false;
    const prepared = this.prepare({ client: undefined, user: undefined, host, port, listener: "" });
    const canonical = canonicalAddress(literal);
    if (this.builtinDenial(prepared, canonical) !== undefined) return false;
    for (const rule of this.rules) {
      if (rule.clients !== null || rule.users !== null || rule.listeners !== null) continue;
      if (matches(rule, prepared, canonical)) return rule.allow;
    }
    return true;
  }

  /** A built-in denial that applies, undefined when none does, null when it needs the address. */
  private builtinDenial(
    prepared: PreparedRequest,
    address: Address | null,
  ): Verdict | null | undefined {
    if (address === null) return null;
    for (const rule of this.builtins) {
      if (rule.port !== undefined && rule.port !== prepared.request.port) continue;
      if (matches(rule, prepared, address)) return { allow: false, rule: rule.label };
    }
    return undefined;
  }
}

/** Whether every criterion of `rule` holds; null when one needs the address and it is unknown.
 *  Plain loops, no closures: this runs for every rule on every connection. */
function matches(rule: Rule, prepared: PreparedRequest, address: Address | null): boolean | null {
  const { request } = prepared;
  if (rule.listeners !== null && !rule.listeners.has(request.listener)) return false;
  if (rule.portRanges !== null && !inPortRanges(rule.portRanges, request.port)) return false;
  if (rule.users !== null && (request.user === undefined || !rule.users.has(request.user))) {
    return false;
  }
  if (
    rule.clients !== null &&
    (prepared.client === null || !inAny(rule.clients, prepared.client))
  ) {
    return false;
  }
  if (rule.exactDomains !== null) {
    const domain = prepared.domain;
    if (domain === null) return false;
    if (!rule.exactDomains.has(domain) && !endsWithAny(rule.domainSuffixes!, domain)) return false;
  }
  if (rule.destinations !== null) {
    if (address === null) return null;
    if (!inAny(rule.destinations, address)) return false;
  }
  return true;
}

function inPortRanges(ranges: readonly (readonly [number, number])[], port: number): boolean {
  for (const [low, high] of ranges) if (port >= low && port <= high) return true;
  return false;
}

function inAny(networks: readonly Network[], address: Address): boolean {
  for (const network of networks) if (inNetwork(network, address)) return true;
  return false;
}

function endsWithAny(suffixes: readonly string[], domain: string): boolean {
  for (const suffix of suffixes) if (domain.endsWith(suffix)) return true;
  return false;
}
