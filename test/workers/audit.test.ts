import type { Context } from "hono";
import { afterEach, describe, expect, it, vi } from "vitest";
import { type AuditRecord, audit, dataPoint } from "../../workers/observe/audit";
import type { AppEnv } from "../../workers/types";

/**
 * Audit events as Workers Analytics Engine data points (`workers/observe/audit.ts`): within the dataset's
 * limits (one index of at most 96 bytes) whatever the client ID, and never failing the request.
 */
afterEach(() => vi.restoreAllMocks());

const bytes = (s: string) => new TextEncoder().encode(s).byteLength;
const LONG_URL = `https://agents.example.com/${"very-long-path-segment/".repeat(12)}client.json`;

describe("audit data points", () => {
  it("index the client ID, cut to 96 bytes when it is a long URL; the blob keeps up to 1 KB of it", () => {
    const short = dataPoint({ event: "token.issued", outcome: "success", client_id: "lk_abc", detail: "client_credentials" }, "req-1", 1);
    expect(short).toEqual({ blobs: ["token.issued", "success", "lk_abc", "", "client_credentials", "req-1"], doubles: [1], indexes: ["lk_abc"] });
    const long = dataPoint({ event: "token.issued", outcome: "success", client_id: LONG_URL }, "req-2", 1);
    expect(bytes(long.indexes?.[0] as string)).toBe(96);
    expect(LONG_URL.startsWith(long.indexes?.[0] as string)).toBe(true);
    expect(long.blobs?.[2]).toBe(LONG_URL);
    const huge = dataPoint({ event: "token.refused", outcome: "failure", detail: "x".repeat(5000) }, "req-3", 1);
    expect(huge.blobs?.[4]).toBe("x".repeat(1024));
    expect(huge.indexes).toEqual(["token.refused"]);
  });

  it("never cuts inside a character", () => {
    const point = dataPoint({ event: "token.issued", outcome: "success", client_id: `https://é.example/${"é".repeat(60)}` }, "r", 1);
    const index = point.indexes?.[0] as string;
    expect(bytes(index)).toBeLessThanOrEqual(96);
    expect(bytes(index)).toBeGreaterThanOrEqual(95);
    expect(index).not.toContain("\uFFFD");
  });

  it("a failed write is logged and does not fail the request; the event stays in the request's trail", () => {
    const trail: AuditRecord[] = [];
    const vars: Record<string, unknown> = { request_id: "req-9", audit_trail: trail };
    const c = {
      get: (key: string) => vars[key],
      env: {
        AUDIT: {
          writeDataPoint: () => {
            throw new TypeError("Index exceeds 96 bytes");
          },
        },
      },
    } as unknown as Context<AppEnv>;
    const errors: string[] = [];
    vi.spyOn(console, "error").mockImplementation((line: string) => void errors.push(line));
    const record: AuditRecord = { event: "token.issued", outcome: "success", client_id: "lk_abc" };
    expect(() => audit(c, record)).not.toThrow();
    expect(trail).toEqual([record]);
    expect(JSON.parse(errors[0] as string)).toMatchObject({
      level: "error",
      event: "audit_write_failed",
      request_id: "req-9",
      error: "TypeError: Index exceeds 96 bytes",
    });
  });
});
