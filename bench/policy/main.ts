// What the access rules cost one connection: prepare (parse the client and the destination) plus
// one decision, with no rules (the built-in denials only: the baseline every connection pays), and
// with 10 and 1,000 rules that do not match, or match last. Not the dial around it: DNS and
// connect cost far more, and bench:e2e measures those.
//
//   bun run bench:policy              mitata, about 10 s
//   BENCH_SMOKE=1 bun run bench:policy   tiny loops, for the test suite

import { do_not_optimize, measure } from "mitata";
import { AccessPolicy, type AccessRequest, type RuleConfig } from "../../src/policy/access.ts";
import { markdownTable } from "../lib/markdown.ts";

const SMOKE = process.env.BENCH_SMOKE === "1";

/** Rules that never match the benchmark's request, each kind of criterion in turn. */
function missRules(count: number): RuleConfig[] {
  return Array.from({ length: count }, (_, index): RuleConfig => {
    const octet = index % 250;
    switch (index % 5) {
      case 0:
        return { action: "deny", clients: [`10.${octet}.0.0/16`] };
      case 1:
        return { action: "deny", users: [`user${index}`] };
      case 2:
        return { action: "deny", destinations: [`172.16.${octet}.0/24`] };
      case 3:
        return { action: "deny", domains: [`host${index}.example`, `*.zone${index}.example`] };
      default:
        return { action: "deny", ports: [1000 + index, `${20000 + index}-${20000 + index}`] };
    }
  });
}

const LISTENING = [{ host: "127.0.0.1", port: 1080 }];
const BY_IP: AccessRequest = {
  client: "198.51.100.7",
  user: "alice",
  host: "203.0.113.10",
  port: 443,
  listener: "127.0.0.1:1080",
};
const BY_NAME: AccessRequest = { ...BY_IP, host: "www.example.net" };
const MATCH_LAST: RuleConfig = { action: "allow", destinations: ["203.0.113.0/24"] };

interface Case {
  name: string;
  run: () => boolean;
}

function ipCase(name: string, rules: RuleConfig[]): Case {
  const access = new AccessPolicy({ default: "allow", rules }, LISTENING);
  return { name, run: () => access.decide(access.prepare(BY_IP))?.allow === true };
}

function nameCase(name: string, rules: RuleConfig[]): Case {
  const access = new AccessPolicy({ default: "allow", rules }, LISTENING);
  return {
    name,
    run: () => {
      const prepared = access.prepare(BY_NAME);
      // A name decides after resolution unless a rule settles it by the name alone.
      return (access.decide(prepared) ?? access.decideAddress(prepared, "203.0.113.10")).allow;
    },
  };
}

const cases: Case[] = [
  ipCase("no rules (built-ins only), IP destination — baseline", []),
  ipCase("10 rules, none match, IP destination", missRules(10)),
  ipCase("1,000 rules, none match, IP destination", missRules(1000)),
  ipCase("1,000 rules, the last matches, IP destination", [...missRules(999), MATCH_LAST]),
  nameCase("no rules, domain + resolved address", []),
  nameCase("1,000 rules, none match, domain + resolved address", missRules(1000)),
];

let checksum = 0;
const rows: string[][] = [];
let baselineNs = 0;
for (const c of cases) {
  let ns: number;
  if (SMOKE) {
    const iterations = 200;
    const started = Bun.nanoseconds();
    for (let i = 0; i < iterations; i++) if (c.run()) checksum++;
    ns = (Bun.nanoseconds() - started) / iterations;
  } else {
    const stats = await measure(() => do_not_optimize(c.run()), { min_cpu_time: 1e9 });
    ns = stats.avg;
    if (c.run()) checksum++;
  }
  if (baselineNs === 0) baselineNs = ns;
  rows.push([
    c.name,
    ns < 1000 ? `${ns.toFixed(0)} ns` : `${(ns / 1000).toFixed(2)} µs`,
    `${(ns / baselineNs).toFixed(1)}×`,
  ]);
}

console.log(
  `access rules: prepare + decide per connection${SMOKE ? " (smoke: 200 iterations, not a measurement)" : ""}\n`,
);
console.log(markdownTable(["case", "per connection", "× baseline"], rows, { padded: true }));
console.log(`\nchecksum ${checksum}`);
