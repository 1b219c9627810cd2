// Where the committed benchmark results live: bench/results/ (pool.json, pool-workers.svg, e2e.md,
// e2e.json). Not the choice of where a run writes: each main.ts decides that (smoke and partial runs
// go to a temporary directory, never over these files).

import { fileURLToPath } from "node:url";

export const COMMITTED_RESULTS_DIR = fileURLToPath(new URL("../results/", import.meta.url));
