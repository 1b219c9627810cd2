// Small statistics both benchmarks take over repeated samples. Not a statistics library: only what
// the benchmarks use, with their exact definitions (the upper median for an even count).

/** The middle value; of an even count, the upper of the two middle ones. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1]!;
}
