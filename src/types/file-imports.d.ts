// Types for `import path from "….so" with { type: "file" }` (src/compiled.ts): Bun resolves such an
// import to the file's path, inside a compiled binary an embedded /$bunfs/ path. Types only.

declare module "*.so" {
  const path: string;
  export default path;
}
