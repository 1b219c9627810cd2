// src/protocol is pure: it imports only its own modules, never Bun, Node or src/proxy.

import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const protocolDir = join(import.meta.dir, "../../src/protocol");

test("src/protocol imports only sibling modules and uses no Bun or Node globals", () => {
  const files = readdirSync(protocolDir).filter((name) => name.endsWith(".ts"));
  expect(files.length).toBeGreaterThanOrEqual(7);
  const offences: string[] = [];
  for (const file of files) {
    const code = readFileSync(join(protocolDir, file), "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "") // comments may name Bun APIs; code may not
      .replace(/\/\/.*$/gm, "");
    for (const match of code.matchAll(/\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"/g)) {
      const specifier = match[1] ?? match[2];
      if (!/^\.\/[a-z-]+\.ts$/.test(specifier)) offences.push(`${file} imports ${specifier}`);
    }
    for (const match of code.matchAll(/\b(Bun|process|Buffer|require|setTimeout|console)\b/g)) {
      offences.push(`${file} uses ${match[1]}`);
    }
  }
  expect(offences).toEqual([]);
});
