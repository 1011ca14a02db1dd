/**
 * A module whose evaluation throws, for the load-failure test.
 *
 * @module
 */

/** Never runs: the module fails while it loads. */
export function never(): void {}

throw new Error("this module fails while it loads");
