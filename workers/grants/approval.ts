import type { Context } from "hono";
import type { PollResult } from "../../durable-objects/approval-queue";
import { extended } from "../../durable-objects/grant-record";
import type { Approval, ApprovalRequest } from "../../schemas/approval";
import type { Client } from "../../schemas/client";
import type { GrantData } from "../../schemas/grant";
import type { Resource } from "../../schemas/resource";
import { findResource, registry } from "../clients/cache";
import { now } from "../clock";
import type { Config } from "../config";
import { AccessDenied, AuthorizationPending, ExpiredToken, InvalidGrant, ServerError, SlowDown, unreachable } from "../errors";
import { log } from "../observe/log";
import { type AttestationOutcome, enforceAttestationPolicy } from "../policy/attestation";
import { pickAudience, scopesForAudience } from "../policy/scope";
import { atHash, mintAccessToken } from "../tokens/access-token";
import { mintHandle, parseHandle } from "../tokens/handles";
import { mintIdToken } from "../tokens/id-token";
import type { AppEnv } from "../types";
import { binding, grantStub } from "./issue";
import type { Issued, TokenResponse } from "./types";

/** CIBA Core §10.3.1: the ID token of a push carries the request's id and the refresh token's hash. */
export const AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id";
export const RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash";

/** The ApprovalQueue stub that a presented `auth_req_id` or `device_code` names, with the handle's hash. */
export async function queueFor(env: Env, kind: "auth_req" | "device", token: string) {
  const handle = await parseHandle(kind, token);
  if (!handle) return null;
  try {
    return { stub: env.APPROVALS.get(env.APPROVALS.idFromString(handle.object_id)), hash: handle.hash };
  } catch {
    return null;
  }
}

/**
 * Maps a poll's result to the token endpoint's answer (CIBA §11, RFC 8628 §3.5): the approval, or
 * `authorization_pending`, `slow_down`, `expired_token`, `access_denied`, `invalid_grant`.
 */
export function approvedOrThrow(result: PollResult, what: string): { request: ApprovalRequest; approval: Approval } {
  if (result.ok) return result;
  switch (result.reason) {
    case "pending":
      throw new AuthorizationPending("the user has not decided yet");
    case "slow_down":
      throw new SlowDown(`polling too fast; wait at least ${result.interval} seconds between requests`);
    case "expired":
      throw new ExpiredToken(`the ${what} has expired`);
    case "denied":
      throw new AccessDenied("the user denied the request");
    case "unknown":
    case "redeemed":
      throw new InvalidGrant(`the ${what} is invalid, expired or already used`, result.reason);
    case "client_mismatch":
      throw new InvalidGrant(`the ${what} was issued to another client`);
    default:
      return unreachable(result);
  }
}

/**
 * The token endpoint's poll (CIBA §10.1, RFC 8628 §3.4) and, once the request is approved, its tokens.
 * The poll redeems the approval, exactly once; if issuing then fails (a refused `resource`, a failed
 * write), the approval is released back to `approved`, so nothing the user decided is lost and the
 * client can correct its request and poll again. Tokens are bound as in the code flow: the access token
 * to the request's DPoP proof or signature (`binding`), a public client's refresh tokens to the DPoP key
 * (RFC 9449 §5), and an attested client's to its Client Instance Key.
 */
export async function pollAndIssue(c: Context<AppEnv>, kind: "auth_req" | "device", handle: string): Promise<Issued> {
  const what = kind === "auth_req" ? "auth_req_id" : "device_code";
  const queue = await queueFor(c.env, kind, handle);
  if (!queue) throw new InvalidGrant(`the ${what} is invalid, expired or already used`);
  const client = c.get("client");
  // Two token bindings are refused before the poll, so such a request neither redeems nor counts as a poll.
  const bound = binding(c);
  const refresh_keys = {
    dpop_jkt: c.get("auth_method") === "none" ? c.get("dpop")?.jkt : undefined,
    instance_jkt: c.get("attestation")?.facts.jkt,
  };
  const t = now();
  const { request, approval } = approvedOrThrow(await queue.stub.poll({ handle_hash: queue.hash, client_id: client.client_id, now: t }), what);
  try {
    const enforce: EnforcePolicy = (target) => enforceAttestationPolicy(c, target);
    const resource = c.get("params").all("resource");
    return await issueApproved(c.env, c.get("cfg"), { client, request, approval, resource, now: t, enforce, bound, refresh_keys });
  } catch (err) {
    const released = await queue.stub
      .release({ handle_hash: queue.hash, client_id: client.client_id })
      .catch((e: unknown) => ({ ok: false, reason: String(e) }));
    if (!released.ok) log("error", "approval_not_released", { request_id: c.get("request_id"), client_id: client.client_id, reason: released.reason });
    throw err;
  }
}

/** Attestation policy for what a token is about: what it allows, or a thrown refusal (`policy/attestation.ts`). */
export type EnforcePolicy = (target: { scope: readonly string[]; resources: readonly (Resource | null)[] }) => AttestationOutcome;

/**
 * Tokens for an approved request, like the code flow's: the grant is a real GrantObject (refresh,
 * revocation and introspection work as for any grant). A step-up request extends the grant it names
 * instead (idempotently), and its holder keeps refreshing with the refresh token it has. `push` adds the
 * CIBA §10.3.1 ID token claims. Attestation policy (`enforce`) is checked for what the user approved
 * before anything changes, and again for the token's own scope and audience. A new grant is created
 * last, after every check and signature, so a failure leaves no grant behind.
 */
export async function issueApproved(
  env: Env,
  cfg: Config,
  input: {
    client: Client;
    request: ApprovalRequest;
    approval: Approval;
    resource: string[];
    now: number;
    enforce: EnforcePolicy;
    push?: { auth_req_id: string };
    /** The access token's key and `token_type` (`binding`); none is Bearer, as for a push, which answers no request. */
    bound?: ReturnType<typeof binding>;
    /** The keys a new grant's refresh tokens are bound to (GrantObject.createActive); an extended grant keeps its own. */
    refresh_keys?: { dpop_jkt?: string; instance_jkt?: string };
  },
): Promise<Issued> {
  const { client, request, approval, now, enforce } = input;
  const bound: ReturnType<typeof binding> = input.bound ?? { token_type: "Bearer" };
  enforce({ scope: request.scope, resources: await Promise.all(request.resources.map((r) => findResource(env, r))) });
  let grant_id: string;
  let data: GrantData;
  let refresh: { token: string; hash: string } | undefined;
  let create: (() => Promise<void>) | undefined;
  if (request.extends_grant) {
    // The grant is read now and widened last, like a new one is created last: a request that fails on the
    // way (a refused audience, policy, a signature) leaves the grant as it was.
    const stub = grantStub(env, request.extends_grant);
    const current = stub && (await stub.status({ now }));
    if (!stub || !current?.active) throw new InvalidGrant("the grant this request extends is no longer active", "inactive");
    if (current.data.client_id !== client.client_id || current.data.sub !== approval.sub) {
      throw new InvalidGrant("the grant this request extends is no longer active", "not this client's and user's");
    }
    grant_id = request.extends_grant;
    data = extended(current.data, request.scope, request.resources);
    create = async () => {
      const widened = await stub.extend({ client_id: client.client_id, sub: approval.sub, scope: request.scope, resources: request.resources, now });
      if (!widened.ok) throw new InvalidGrant("the grant this request extends is no longer active", widened.reason);
    };
  } else {
    const id = env.GRANTS.newUniqueId();
    grant_id = id.toString();
    const wantsOidc = request.scope.includes("openid");
    const newData: GrantData = {
      client_id: client.client_id,
      sub: approval.sub,
      scope: request.scope,
      resources: request.resources,
      auth_time: approval.auth_time,
      amr: approval.amr,
      // OIDC Core §11: with openid, refresh tokens need offline_access; as in the code flow.
      refresh: client.grant_types.includes("refresh_token") && (!wantsOidc || request.scope.includes("offline_access")),
    };
    data = newData;
    refresh = newData.refresh ? await mintHandle("refresh", grant_id) : undefined;
    const refresh_hash = refresh?.hash;
    create = async () => {
      // Indexed before it exists, as in the code flow: deleting the user or client always finds it.
      const recorded = await registry(env).recordGrant({ grant_id, sub: approval.sub, client_id: client.client_id });
      if (!recorded.ok) {
        throw new InvalidGrant(
          recorded.reason === "no_user" ? "the user who approved this request no longer exists" : "this client no longer exists",
          recorded.reason,
        );
      }
      const created = await env.GRANTS.get(id).createActive({
        data: newData,
        refresh_hash,
        ...input.refresh_keys,
        lifetimes: { expires_at: now + cfg.REFRESH_TOKEN_TTL, idle_ttl: cfg.REFRESH_TOKEN_IDLE_TTL, reuse_window: cfg.REFRESH_TOKEN_REUSE_WINDOW },
        now,
      });
      if (!created.ok && created.reason === "revoked") throw new InvalidGrant("the grant was revoked while it was being made", created.reason);
      if (!created.ok) throw new ServerError("could not create the grant", "unique grant id already existed");
    };
  }
  // The token is for the resource the client names, else the one this request was about, else the grant's only one.
  const wanted = input.resource.length ? input.resource : request.resources.length === 1 ? request.resources : [];
  const aud = pickAudience(data.resources, wanted, cfg.ISSUER, data.scope);
  const scope = await scopesForAudience(env, data.scope, aud, cfg.ISSUER, data.resource_scopes);
  const outcome = enforce({ scope, resources: aud === cfg.ISSUER ? [] : [await findResource(env, aud)] });
  const at = await mintAccessToken(env, cfg, {
    ...outcome,
    sub: data.sub,
    aud,
    client_id: client.client_id,
    scope,
    auth_time: data.auth_time,
    gid: grant_id,
    jkt: bound.jkt,
    jwk: bound.jwk,
    now,
  });
  const response: TokenResponse = { access_token: at.token, token_type: bound.token_type, expires_in: at.expires_in };
  if (scope.length) response.scope = scope.join(" ");
  if (refresh) response.refresh_token = refresh.token;
  if (data.scope.includes("openid")) {
    const claims: Record<string, unknown> = {};
    if (input.push) {
      claims[AUTH_REQ_ID_CLAIM] = input.push.auth_req_id;
      if (refresh) claims[RT_HASH_CLAIM] = await atHash(refresh.token);
    }
    response.id_token = await mintIdToken(env, cfg, {
      sub: data.sub,
      client_id: client.client_id,
      alg: client.id_token_signed_response_alg,
      auth_time: data.auth_time,
      amr: data.amr,
      access_token: at.token,
      now,
      claims,
    });
  }
  await create?.();
  return { response, sub: data.sub, aud, jti: at.claims.jti, grant_id };
}
