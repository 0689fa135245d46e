import type { PushSubscriptionRecord } from "../schemas/approval";
import { composeBody, deliver } from "../workers/notify/deliver";
import { log } from "../workers/observe/log";
import { reqKey, type Stored, strip } from "./approval-records";
import { afterAttempt, type OutboxEntry, outboxKey, tokensExpired } from "./outbox";

/**
 * One delivery attempt of one outbox entry (`ApprovalQueue.alarm`): fix its body first (a push-mode approval's
 * tokens are minted here, once), give up what is stale, then send and record what happened. Only the
 * synchronous storage API is used between reading a request and writing what depends on it.
 */
export async function attemptDelivery(kv: SyncKvStorage, env: Env, e: OutboxEntry, now: number): Promise<void> {
  const r = kv.get<Stored>(reqKey(e.request_id)) as Stored;
  if (e.body === undefined) {
    // A push-mode approval is redeemed by its delivery: the tokens are minted once, here.
    if (e.channel === "client" && r.delivery === "push" && e.event === "approved") {
      // Already redeemed without a body means an earlier attempt died while minting: never mint twice.
      const event = r.state === "approved" ? "approved" : r.state === "expired" ? "expired" : "failed";
      if (event === "approved") kv.put(reqKey(r.id), { ...r, state: "redeemed" });
      e.body = await composeBody(env, { channel: e.channel, request: strip(r), event, approval: r.approval });
    } else {
      e.body = await composeBody(env, { channel: e.channel, request: strip(r), event: e.event, approval: r.approval });
    }
    kv.put(outboxKey(e.request_id, e.channel), e);
  }
  // The user's own channels announce a request to decide: once it is decided or expired, that is stale news.
  if (e.channel !== "client" && (r.state !== "pending" || now >= r.expires_at)) {
    kv.put(outboxKey(e.request_id, e.channel), afterAttempt(e, { ok: false, retry: false, reason: "the request was decided or expired before delivery" }, now));
    return;
  }
  // A push whose access token has expired meanwhile would hand the client dead tokens: it is given up.
  if (tokensExpired(e.body, now)) {
    kv.put(outboxKey(e.request_id, e.channel), afterAttempt(e, { ok: false, retry: false, reason: "the pushed tokens expired before delivery" }, now));
    return;
  }
  const subscription = e.channel.startsWith("webpush:") ? kv.get<PushSubscriptionRecord>(`push:${e.channel.slice(8)}`) : undefined;
  const webhook = e.channel === "webhook" ? kv.get<string>("webhook") : undefined;
  const result = await deliver(env, { channel: e.channel, request: strip(r), body: e.body, subscription, webhook });
  const next = afterAttempt(e, result, now);
  kv.put(outboxKey(e.request_id, e.channel), next);
  // An operator can see why a notification never arrived (the outbox keeps only the last error). No URL:
  // a webhook's may itself be a secret.
  if (!result.ok)
    log("warn", "notification_not_delivered", {
      approval_request: e.request_id,
      channel: e.channel.split(":")[0],
      attempts: next.attempts,
      reason: result.reason.replace(/https?:\/\/\S+/g, "<url>"),
      gave_up: next.status !== "queued",
    });
  // RFC 8030 §7.3: a subscription the push service no longer knows (404/410) is dropped.
  if (!result.ok && !result.retry && e.channel.startsWith("webpush:")) kv.delete(`push:${e.channel.slice(8)}`);
}
