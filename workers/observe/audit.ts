import type { Context } from "hono";
import type { AppEnv } from "../types";
import { log } from "./log";

/**
 * Audit events: who was granted what, who was refused and why, what administrators changed, and
 * security events (a replayed code, a reused refresh token). Each is one Workers Analytics Engine data
 * point (dataset `latchkey_audit`) and rides in its request's one log line as `audit: [{event, …}]`
 * (README "Audit events"):
 *
 *   blob1 event   blob2 outcome   blob3 client_id   blob4 subject   blob5 detail   blob6 request_id
 *   double1 unix time             index1 client_id (or event, when no client)
 */
export type AuditEvent =
  | "token.issued"
  | "token.refused"
  | "authorization.granted"
  | "authorization.denied"
  | "login.succeeded"
  | "login.failed"
  | "login.locked"
  | "session.ended"
  | "security.code_replayed"
  | "security.refresh_reused"
  | "token.revoked"
  | "grant.revoked"
  | "policy.denied"
  | "admin.changed"
  | "admin.refused"
  | "client.registered"
  | "client.updated"
  | "client.deleted"
  | "approval.requested"
  | "approval.approved"
  | "approval.denied"
  | "rate_limited";

export interface AuditRecord {
  event: AuditEvent;
  outcome: "success" | "failure";
  client_id?: string;
  /** The user (or, for a client acting for itself, the client) the event concerns. */
  subject?: string;
  /** A short, non-secret detail: a grant type, an error code, an admin action. */
  detail?: string;
}

/** Workers Analytics Engine limits per data point: one index of at most 96 bytes, blobs of 16 KB in all. */
const MAX_INDEX_BYTES = 96;
const MAX_BLOB_BYTES = 1024;
const encoder = new TextEncoder();

/** `value` cut to at most `max` bytes of UTF-8, never inside a character. */
function cutToBytes(value: string, max: number): string {
  // A UTF-16 code unit is at most 3 bytes of UTF-8: most values need no encoding to know they fit.
  if (value.length * 3 <= max) return value;
  const bytes = encoder.encode(value);
  if (bytes.byteLength <= max) return value;
  let end = max;
  // Back off continuation bytes (10xxxxxx) so the cut falls between characters.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}

/**
 * The Analytics Engine data point of one audit event, within the dataset's limits: a client ID that is a
 * long URL (a client ID metadata document) is cut to 96 bytes as the index and to 1 KB as a blob, as is
 * any other blob; six blobs stay far under 16 KB.
 */
export function dataPoint(record: AuditRecord, request_id: string, now: number): AnalyticsEngineDataPoint {
  const blobs = [record.event, record.outcome, record.client_id ?? "", record.subject ?? "", record.detail ?? "", request_id];
  return {
    blobs: blobs.map((b) => cutToBytes(b, MAX_BLOB_BYTES)),
    doubles: [now],
    indexes: [cutToBytes(record.client_id ?? record.event, MAX_INDEX_BYTES)],
  };
}

export function audit(c: Context<AppEnv>, record: AuditRecord): void {
  const request_id = c.get("request_id") ?? "";
  c.get("audit_trail").push(record);
  try {
    c.env.AUDIT?.writeDataPoint(dataPoint(record, request_id, Date.now() / 1000));
  } catch (error) {
    // The event still rides in the request's log line; a failed write must not fail the request.
    log("error", "audit_write_failed", { request_id, audit_event: record.event, error: String(error) });
  }
}
