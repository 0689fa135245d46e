import type { Context } from "hono";
import type { JWK } from "jose";
import type { GrantData } from "../../schemas/grant";
import type { Resource } from "../../schemas/resource";
import { findResource } from "../clients/cache";
import { now } from "../clock";
import { InvalidRequest } from "../errors";
import { log } from "../observe/log";
import { enforceAttestationPolicy } from "../policy/attestation";
import { pickAudience, scopesForAudience } from "../policy/scope";
import { mintAccessToken } from "../tokens/access-token";
import { mintIdToken } from "../tokens/id-token";
import type { AppEnv } from "../types";
import type { Issued, TokenResponse } from "./types";

/**
 * Mints the tokens for a grant a user gave (authorization_code and refresh_token share this): an
 * access token for one audience, the ID token when `openid` was granted, and the refresh token the
 * grant object accepted. With a DPoP proof on the request the access token is bound to its key and its
 * type is `DPoP` (RFC 9449 §5), whatever the refresh token's binding. Attestation policy for the client
 * and the audience is evaluated on every issue, refreshes included.
 */
export async function issueFromGrant(
  c: Context<AppEnv>,
  input: { grant_id: string; data: GrantData; refresh_token?: string; id_token: boolean },
): Promise<Issued> {
  const cfg = c.get("cfg");
  const client = c.get("client");
  const params = c.get("params");
  const bound = binding(c);
  const t = now();
  const aud = pickAudience(input.data.resources, params.all("resource"), cfg.ISSUER, input.data.scope);
  const scope = await scopesForAudience(c.env, input.data.scope, aud, cfg.ISSUER, input.data.resource_scopes);
  const outcome = enforceAttestationPolicy(c, { scope, resources: aud === cfg.ISSUER ? [] : [await findResource(c.env, aud)] });
  const at = await mintAccessToken(c.env, cfg, {
    ...outcome,
    sub: input.data.sub,
    aud,
    client_id: client.client_id,
    scope,
    auth_time: input.data.auth_time,
    gid: input.grant_id,
    jkt: bound.jkt,
    jwk: bound.jwk,
    now: t,
  });
  const response: TokenResponse = { access_token: at.token, token_type: bound.token_type, expires_in: at.expires_in };
  if (scope.length) response.scope = scope.join(" ");
  if (input.refresh_token) response.refresh_token = input.refresh_token;
  if (input.id_token && input.data.scope.includes("openid")) {
    response.id_token = await mintIdToken(c.env, cfg, {
      sub: input.data.sub,
      client_id: client.client_id,
      alg: client.id_token_signed_response_alg,
      auth_time: input.data.auth_time,
      amr: input.data.amr,
      nonce: input.data.nonce,
      access_token: at.token,
      now: t,
    });
  }
  return { response, sub: input.data.sub, aud, jti: at.claims.jti, grant_id: input.grant_id };
}

/**
 * `issueFromGrant` after a grant's transition; when it fails, `undo` takes the transition back before the
 * failure is answered. So a request refused by policy that depends on the grant (its scope, an audience
 * it did not name) or failing for want of a signing key spends neither its code nor its refresh token.
 */
export async function issueOrUndo(c: Context<AppEnv>, input: Parameters<typeof issueFromGrant>[1], undo: () => Promise<{ ok: boolean }>): Promise<Issued> {
  try {
    return await issueFromGrant(c, input);
  } catch (error) {
    const undone = await undo().catch((e: unknown) => ({ ok: false, error: String(e) }));
    if (!undone.ok) log("warn", "grant_undo_failed", { request_id: c.get("request_id"), grant_id: input.grant_id, ...undone });
    throw error;
  }
}

/**
 * The key the access token is bound to and the `token_type` that says so: the DPoP proof's (RFC 9449 §5),
 * the request signature's (draft-richer-oauth-httpsig §4: "An HTTP Message Signature bound access token
 * MUST have a token_type value of httpsig"), or none (Bearer). A token has one binding, so a request
 * with both is refused.
 */
export function binding(c: Context<AppEnv>): { jkt?: string; jwk?: JWK; token_type: TokenResponse["token_type"] } {
  const dpop = c.get("dpop");
  const httpsig = c.get("httpsig");
  if (dpop && httpsig) throw new InvalidRequest("an access token is bound to one key: send a DPoP proof or an HTTP message signature, not both");
  if (dpop) return { jkt: dpop.jkt, token_type: "DPoP" };
  if (httpsig) return { jwk: httpsig.jwk, token_type: "httpsig" };
  return { token_type: "Bearer" };
}

/** The registered resource a token request names, when it names exactly one (else none: the grant decides). */
export async function namedResource(c: Context<AppEnv>): Promise<Resource[]> {
  const named = c.get("params").all("resource");
  const resource = named.length === 1 ? await findResource(c.env, named[0] as string) : null;
  return resource ? [resource] : [];
}

/** The GrantObject stub named by a handle's object id, or null when the id is not one of ours. */
export function grantStub(env: Env, objectId: string) {
  try {
    return env.GRANTS.get(env.GRANTS.idFromString(objectId));
  } catch {
    return null;
  }
}
