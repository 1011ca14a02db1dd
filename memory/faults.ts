/**
 * Crash points: named places inside multi-step operations where a test can
 * stop the calling worker, to check that a worker dying there leaves every
 * shared structure usable for the others.
 *
 * In Deno a terminated worker keeps running until it returns to its event
 * loop, so it never dies in the middle of a synchronous operation on its own.
 * Tests set {@linkcode faultInjection}.hook inside a worker; the hook runs at
 * every crash point and may stop the worker there for good (the testing
 * harness's `ctx.hang()` does that without unwinding, so no `finally` runs).
 * In normal use the hook is undefined and a crash point costs one property
 * load. Crash points sit only on slow paths.
 *
 * @module
 */

/**
 * The hook that tests install to die at a crash point.
 *
 * @example
 * ```ts
 * import { faultInjection } from "@sabre/sabre";
 * const seen: string[] = [];
 * faultInjection.hook = (site) => seen.push(site);
 * // ... run operations, then:
 * faultInjection.hook = undefined;
 * ```
 */
export const faultInjection: { hook: ((site: string) => void) | undefined } = {
  hook: undefined,
};

/**
 * Marks a crash point named `site`: calls the installed hook, if any.
 *
 * @example
 * ```ts
 * import { crashPoint, faultInjection } from "@sabre/sabre";
 * let hits = 0;
 * faultInjection.hook = () => hits++;
 * crashPoint("demo.step");
 * faultInjection.hook = undefined;
 * console.assert(hits === 1);
 * ```
 */
export function crashPoint(site: string): void {
  const hook = faultInjection.hook;
  if (hook !== undefined) hook(site);
}
