import type { Context } from "hono";
import type { AppEnv } from "../types";

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
  | "security.code_replayed"
  | "security.refresh_reused"
  | "token.revoked"
  | "policy.denied"
  | "admin.changed"
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

export function audit(c: Context<AppEnv>, record: AuditRecord): void {
  const request_id = c.get("request_id") ?? "";
  c.get("audit_trail").push(record);
  c.env.AUDIT?.writeDataPoint({
    blobs: [record.event, record.outcome, record.client_id ?? "", record.subject ?? "", record.detail ?? "", request_id],
    doubles: [Date.now() / 1000],
    indexes: [record.client_id ?? record.event],
  });
}
