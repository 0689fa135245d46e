import type { DeliveryResult, OutboxEvent } from "../../durable-objects/outbox";
import type { Approval, ApprovalRequest, PushSubscriptionRecord } from "../../schemas/approval";
import { findClient } from "../clients/cache";
import { now } from "../clock";
import { config } from "../config";
import { OAuthError } from "../errors";
import { issueApproved } from "../grants/approval";
import { log } from "../observe/log";
import { notifyKey, publicKeyOf } from "./keys";
import { sendWebPush } from "./web-push";
import { sendWebhook } from "./webhook";

/**
 * What an outbox entry sends, fixed once before its first attempt (`durable-objects/outbox.ts`):
 * - Web Push to the user: who asks, and for what (no secrets; the inbox has the rest);
 * - the user's signed webhook: the request as the inbox shows it, and where to decide;
 * - CIBA ping (§10.2): `{auth_req_id}`;
 * - CIBA push (§10.3.1): the token response plus `auth_req_id`, or `{error, error_description, auth_req_id}`.
 */
export async function composeBody(env: Env, input: { channel: string; request: ApprovalRequest; event: OutboxEvent; approval?: Approval }): Promise<string> {
  const { request, event } = input;
  if (input.channel === "webhook") {
    // Who it is for: the signature says only that this server sent it, and a gateway may serve many users.
    return JSON.stringify({
      type: "approval_request",
      iss: config(env).ISSUER,
      ...(request.sub !== undefined ? { sub: request.sub } : {}),
      id: request.id,
      client_id: request.client_id,
      client_name: request.client_name,
      ...(request.binding_message !== undefined ? { binding_message: request.binding_message } : {}),
      scope: request.scope,
      resources: request.resources,
      step_up: request.extends_grant !== undefined,
      self_registered: request.self_registered === true,
      expires_at: request.expires_at,
      inbox_url: `${config(env).ISSUER}/inbox`,
    });
  }
  if (input.channel.startsWith("webpush:")) {
    return JSON.stringify({
      type: "approval_request",
      title: `${request.client_name}${request.self_registered ? " (unverified)" : ""} asks for access`,
      body: request.binding_message ?? `Scopes: ${request.scope.join(" ")}`,
      url: "/inbox",
      id: request.id,
    });
  }
  const auth_req_id = request.notification?.auth_req_id as string;
  if (request.delivery === "ping") return JSON.stringify({ auth_req_id });
  if (event === "denied") return JSON.stringify({ error: "access_denied", error_description: "the user denied the request", auth_req_id });
  if (event === "expired") return JSON.stringify({ error: "expired_token", error_description: "the request expired before the user decided", auth_req_id });
  if (event === "failed") return JSON.stringify({ error: "transaction_failed", error_description: "the tokens could not be issued", auth_req_id });
  try {
    const client = await findClient(env, request.client_id);
    if (!client) throw new Error("the client no longer exists");
    const { response: tokens } = await issueApproved(env, config(env), {
      client,
      request,
      approval: input.approval as Approval,
      resource: [],
      now: now(),
      // Push tokens are minted here, with no request of the client's: policy as evaluated when it asked.
      enforce: () => request.attestation ?? {},
      push: { auth_req_id },
      // draft-ietf-oauth-attestation-based-client-auth-11 §11: refresh tokens of an attested request are bound to its instance key.
      refresh_keys: { instance_jkt: request.attestation?.attested?.jkt },
    });
    return JSON.stringify({ ...tokens, auth_req_id });
  } catch (error) {
    // CIBA §12: anything else that stops the tokens is `transaction_failed`.
    const description = error instanceof OAuthError ? error.description : "the tokens could not be issued";
    log("error", "ciba_push_issuance_failed", { approval_request: request.id, client_id: request.client_id, error: String(error) });
    return JSON.stringify({ error: "transaction_failed", error_description: description, auth_req_id });
  }
}

/** One attempt to send an entry's body. Any 2xx is delivered; a vanished Web Push subscription is not retried. */
export async function deliver(
  env: Env,
  input: { channel: string; request: ApprovalRequest; body: string; subscription?: PushSubscriptionRecord; webhook?: string },
): Promise<DeliveryResult> {
  try {
    if (input.channel === "webhook") {
      if (!input.webhook) return { ok: false, retry: false, reason: "webhook removed" };
      const res = await sendWebhook(input.webhook, input.body, await notifyKey(env, "webhook"), now());
      await res.body?.cancel();
      return res.ok ? { ok: true } : { ok: false, retry: true, reason: `webhook answered ${res.status}` };
    }
    if (input.channel.startsWith("webpush:")) {
      if (!input.subscription) return { ok: false, retry: false, reason: "subscription removed" };
      const cfg = config(env);
      const vapid = await notifyKey(env, "vapid");
      const keys = { privateKey: vapid.privateKey, publicKey: publicKeyOf(vapid.publicJwk) };
      const res = await sendWebPush(input.subscription, input.body, keys, { subject: cfg.VAPID_SUBJECT, now: now() });
      await res.body?.cancel();
      if (res.ok) return { ok: true };
      // RFC 8030 §7.3: 404 / 410 mean the subscription is gone for good.
      return { ok: false, retry: res.status !== 404 && res.status !== 410, reason: `push service answered ${res.status}` };
    }
    const target = input.request.notification;
    if (!target) return { ok: false, retry: false, reason: "no notification endpoint" };
    // CIBA §10.2, §10.3: POST JSON with the client_notification_token as a bearer token.
    const res = await fetch(target.endpoint, {
      method: "POST",
      headers: { Authorization: `Bearer ${target.token}`, "Content-Type": "application/json" },
      body: input.body,
      redirect: "manual",
      signal: AbortSignal.timeout(10_000),
    });
    await res.body?.cancel();
    return res.ok ? { ok: true } : { ok: false, retry: true, reason: `client answered ${res.status}` };
  } catch (error) {
    return { ok: false, retry: true, reason: String(error).slice(0, 200) };
  }
}
