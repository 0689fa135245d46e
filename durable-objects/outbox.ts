import { decodeJwt } from "jose";
/**
 * The notification outbox of an ApprovalQueue: one entry per (request, channel, decision), written in
 * the same storage transaction as the decision it announces, delivered by the queue's alarm with
 * backoff. An entry is keyed so that a decision can only ever enqueue it once, and its body is fixed
 * before the first attempt, so every retry sends the very same bytes (for push: the same tokens).
 *
 * Delivery is at least once to the network: if the Worker dies after the receiver answered but before
 * `delivered` is recorded, the next alarm sends the same body again. Receivers deduplicate on
 * `auth_req_id` (CIBA §10.2, §10.3.1: one result per request), which is why a body never changes.
 */

/** Where a notification goes: the client's CIBA notification endpoint, the user's signed webhook, or one of their Web Push subscriptions. */
export type Channel = "client" | "webhook" | `webpush:${string}`;

/** What happened to the request that the entry announces (`failed`: tokens could not be issued). */
export type OutboxEvent = "created" | "approved" | "denied" | "expired" | "failed";

export interface OutboxEntry {
  request_id: string;
  channel: Channel;
  event: OutboxEvent;
  status: "queued" | "delivered" | "failed";
  attempts: number;
  /** When the next attempt is due (seconds since the epoch). */
  next_at: number;
  /** The exact body sent on every attempt; set before the first and dropped once delivered (a push carries tokens). */
  body?: string;
  delivered_at?: number;
  last_error?: string;
}

/** Seconds to wait after the n-th failed attempt; after the last one the entry is given up as failed. */
export const BACKOFF = [10, 30, 120, 600, 1800, 3600] as const;

/** The storage key of an entry: one per request and channel, so a second decision can never add another. */
export function outboxKey(requestId: string, channel: Channel): string {
  return `outbox:${requestId}:${channel}`;
}

/** What a delivery attempt came to. `retry: false` gives up at once (e.g. a Web Push subscription is gone). */
export type DeliveryResult = { ok: true } | { ok: false; retry: boolean; reason: string };

/** The entry after an attempt: delivered, scheduled again with backoff, or failed for good. */
export function afterAttempt(entry: OutboxEntry, result: DeliveryResult, now: number): OutboxEntry {
  const attempts = entry.attempts + 1;
  if (result.ok) {
    const { body: _sent, ...rest } = entry;
    return { ...rest, attempts, status: "delivered", delivered_at: now };
  }
  const wait = BACKOFF[entry.attempts];
  if (!result.retry || wait === undefined) {
    const { body: _dropped, ...rest } = entry;
    return { ...rest, attempts, status: "failed", last_error: result.reason };
  }
  return { ...entry, attempts, next_at: now + wait, last_error: result.reason };
}

/** Whether `body` is a CIBA push token response whose access token has expired by `now`. */
export function tokensExpired(body: string, now: number): boolean {
  try {
    const token = (JSON.parse(body) as { access_token?: unknown }).access_token;
    const exp = typeof token === "string" ? decodeJwt(token).exp : undefined;
    return exp !== undefined && exp <= now;
  } catch {
    return false;
  }
}
