/**
 * The time, in whole seconds since the epoch. Every expiry decision reads it here so that tests can
 * move the clock (`setClock`) without touching timers.
 */
let source: () => number = () => Date.now();

export function now(): number {
  return Math.floor(source() / 1000);
}

/** Tests only: replace the clock (milliseconds since the epoch); call with no argument to restore it. */
export function setClock(ms?: () => number): void {
  source = ms ?? (() => Date.now());
}
