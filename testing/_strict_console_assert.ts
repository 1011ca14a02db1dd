/**
 * Preloaded by `deno task test`: makes a failed `console.assert` throw, so the
 * `console.assert` lines in doc examples are real checks that fail the run.
 *
 * @module
 */

console.assert = (condition?: boolean, ...data: unknown[]): void => {
  if (!condition) {
    throw new Error(`Assertion failed${data.length > 0 ? `: ${data.map(String).join(" ")}` : ""}`);
  }
};
