/**
 * Structured logs: one JSON object per line, always with a request id. What may appear is decided
 * by the callers' field names; none of them ever passes a code, token, secret, password, cookie or
 * query string (the request log records the path only). `test/workers/observability.test.ts` checks.
 */
export type Level = "info" | "warn" | "error";

export function log(level: Level, event: string, fields: Record<string, unknown>): void {
  const line = JSON.stringify({ level, event, time: new Date().toISOString(), ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
