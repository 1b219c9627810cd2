// The names accepted by --pool-strategy, in one place. What each one is: see README "Buffer pool".

export const STRATEGY_NAMES = ["queue", "queue-ts", "mutex", "spinlock", "local", "alloc"] as const;

export type StrategyName = (typeof STRATEGY_NAMES)[number];

export function isStrategyName(name: string): name is StrategyName {
  return (STRATEGY_NAMES as readonly string[]).includes(name);
}
