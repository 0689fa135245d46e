import { Hono } from "hono";
import type { ApprovalRequest } from "../../schemas/approval";
import { grantToExtend, resolveUser } from "../approvals/hints";
import { now } from "../clock";
import { randomToken } from "../crypto";
import { Forbidden, InvalidBindingMessage, InvalidClient, InvalidRequest, InvalidScope, InvalidTarget, ServerError, UnauthorizedClient } from "../errors";
import { attestationChallenge, claimedClientAndIp, clientAuth } from "../middleware/client-auth";
import { formBody } from "../middleware/form-body";
import { noStore } from "../middleware/headers";
import { methodNotAllowed } from "../middleware/method";
import { rateLimit } from "../middleware/rate-limit";
import { audit } from "../observe/audit";
import { enforceAttestationPolicy } from "../policy/attestation";
import { decide, parseResources, parseScope } from "../policy/scope";
import { mintHandle } from "../tokens/handles";
import type { AppEnv } from "../types";

/** Longest `binding_message` accepted; CIBA §7.1: "relatively short", shown on both devices. */
export const MAX_BINDING_MESSAGE = 64;
/** Letters, digits, punctuation, symbols and spaces of any script; no control or formatting characters. */
const BINDING_MESSAGE = /^[\p{L}\p{N}\p{P}\p{S} ]+$/u;

/**
 * OpenID CIBA Core 1.0 §7 backchannel authentication endpoint: no-store → form body → client
 * authentication → validate (§7.1) and attestation policy → queue the request with the user it names →
 * `{auth_req_id, expires_in, interval}` (§7.3). The user decides in their inbox; the client polls, or is pinged or
 * pushed to, by `backchannel_token_delivery_mode`.
 */
export const bcAuthorize = new Hono<AppEnv>();

/** Backchannel requests per client and IP per minute (BACKCHANNEL_LIMIT): each one may notify a person. */
const backchannelLimit = rateLimit("backchannel", (env) => env.BACKCHANNEL_LIMIT, claimedClientAndIp);

bcAuthorize.post("/bc-authorize", noStore, attestationChallenge, formBody, backchannelLimit, clientAuth, async (c) => {
  const params = c.get("params");
  const client = c.get("client");
  const cfg = c.get("cfg");
  // CIBA §7.1: "The Client MUST authenticate to the Backchannel Authentication Endpoint".
  if (c.get("auth_method") === "none") throw new InvalidClient("client authentication is required at the backchannel authentication endpoint");
  if (!client.grant_types.includes("urn:openid:params:grant-type:ciba")) throw new UnauthorizedClient("this client is not registered for the CIBA grant");
  const mode = client.backchannel_token_delivery_mode ?? "poll";
  if (params.has("request")) throw new InvalidRequest("signed authentication requests (request) are not supported");
  if (params.has("authorization_details"))
    throw new InvalidRequest("authorization_details is not supported (no rich authorization request types are registered)");
  if (params.has("user_code")) throw new InvalidRequest("user_code is not supported by this server");
  if (params.has("acr_values")) throw new InvalidRequest("acr_values is not supported");

  // CIBA §7.1: scope is REQUIRED and, this being OpenID, must include openid.
  const requested = parseScope(params.get("scope"));
  if (!requested?.includes("openid")) throw new InvalidScope("scope must include openid");
  const binding_message = params.get("binding_message");
  if (binding_message !== undefined && (binding_message.length > MAX_BINDING_MESSAGE || !BINDING_MESSAGE.test(binding_message))) {
    throw new InvalidBindingMessage(`binding_message must be at most ${MAX_BINDING_MESSAGE} letters, digits, punctuation or spaces`);
  }
  const expiresIn = requestedExpiry(params.get("requested_expiry"), cfg.CIBA_REQUEST_TTL);
  const notificationToken = params.get("client_notification_token");
  // CIBA §7.1: client_notification_token is "REQUIRED if the Client is registered to use Ping or Push modes".
  if (mode !== "poll" && !notificationToken) throw new InvalidRequest(`client_notification_token is required in ${mode} mode`);
  // CIBA §7.1: a bearer token as RFC 6750 §2.1 spells it (b64token), since it goes out in an Authorization header.
  if (notificationToken !== undefined && (notificationToken.length > 1024 || !/^[A-Za-z0-9\-._~+/]+=*$/.test(notificationToken))) {
    throw new InvalidRequest("client_notification_token must be an RFC 6750 bearer token of at most 1024 characters");
  }
  const resources = parseResources(params.all("resource"));
  // A push carries one token response, so its access token can have only one audience.
  if (mode === "push" && resources.length > 1) throw new InvalidTarget("a push-mode request may name one resource");
  const decision = await decide(c.env, client, requested, resources);
  // Refused before anyone is asked; the token request checks again with the attestation it carries.
  const attestation = enforceAttestationPolicy(c, { scope: decision.scope, resources: decision.resources });

  const t = now();
  const user = await resolveUser(c.env, cfg, client, params, t);
  const grantToken = params.get("grant_token");
  const extends_grant = grantToken !== undefined ? await grantToExtend(c.env, cfg, client, user, grantToken, t) : undefined;

  const id = c.env.APPROVALS.idFromName(`user:${user.id}`);
  const handle = await mintHandle("auth_req", id.toString());
  const request: ApprovalRequest = {
    id: randomToken(12),
    kind: "ciba",
    handle_hash: handle.hash,
    client_id: client.client_id,
    client_name: client.client_name ?? client.client_id,
    ...(client.registered_by !== "admin" ? { self_registered: true as const } : {}),
    sub: user.id,
    scope: decision.scope,
    resources: decision.resources.map((r) => r.resource),
    ...(binding_message !== undefined ? { binding_message } : {}),
    ...(extends_grant ? { extends_grant } : {}),
    delivery: mode,
    ...(mode === "push" ? { attestation } : {}),
    ...(mode !== "poll"
      ? { notification: { endpoint: client.backchannel_client_notification_endpoint as string, token: notificationToken as string, auth_req_id: handle.token } }
      : {}),
    created_at: t,
    expires_at: t + expiresIn,
    interval: cfg.POLL_INTERVAL,
  };
  const queued = await c.env.APPROVALS.get(id).enqueue(request);
  if (!queued.ok) {
    // CIBA §13: access_denied (403) when the OP will not take the request, here a full queue (rate limit per user).
    if (queued.reason === "queue_full") throw new Forbidden("too many requests are waiting for this user; try again later");
    throw new ServerError("could not queue the request", queued.reason);
  }
  audit(c, {
    event: "approval.requested",
    outcome: "success",
    client_id: client.client_id,
    subject: request.sub,
    detail: `ciba ${mode} scope=${request.scope.join(" ")}`,
  });
  // CIBA §7.3: interval only for poll and ping, where the client polls.
  return c.json({ auth_req_id: handle.token, expires_in: expiresIn, ...(mode !== "push" ? { interval: cfg.POLL_INTERVAL } : {}) });
});
bcAuthorize.all("/bc-authorize", methodNotAllowed("POST"));

/** CIBA §7.1 `requested_expiry`: a positive integer of seconds; we never wait longer than configured. */
function requestedExpiry(value: string | undefined, max: number): number {
  if (value === undefined) return max;
  if (!/^\d{1,9}$/.test(value) || Number(value) === 0) throw new InvalidRequest("requested_expiry must be a positive integer");
  return Math.min(Number(value), max);
}
