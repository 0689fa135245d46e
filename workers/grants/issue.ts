import type { Context } from "hono";
import type { GrantData } from "../../schemas/grant";
import { findResource } from "../clients/cache";
import { now } from "../clock";
import { enforceAttestationPolicy } from "../policy/attestation";
import { pickAudience, scopesForAudience } from "../policy/scope";
import { mintAccessToken } from "../tokens/access-token";
import { mintIdToken } from "../tokens/id-token";
import type { AppEnv } from "../types";
import type { TokenResponse } from "./types";

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
): Promise<TokenResponse> {
  const { cfg, client, params, dpop } = c.var;
  const t = now();
  const aud = pickAudience(input.data.resources, params.all("resource"), cfg.ISSUER);
  const scope = await scopesForAudience(c.env, input.data.scope, aud, cfg.ISSUER);
  const outcome = enforceAttestationPolicy(c, { scope, resources: aud === cfg.ISSUER ? [] : [await findResource(c.env, aud)] });
  const at = await mintAccessToken(c.env, cfg, {
    ...outcome,
    sub: input.data.sub,
    aud,
    client_id: client.client_id,
    scope,
    auth_time: input.data.auth_time,
    gid: input.grant_id,
    jkt: dpop?.jkt,
    now: t,
  });
  const response: TokenResponse = { access_token: at.token, token_type: dpop ? "DPoP" : "Bearer", expires_in: at.expires_in };
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
  return response;
}

/** The GrantObject stub named by a handle's object id, or null when the id is not one of ours. */
export function grantStub(env: Env, objectId: string) {
  try {
    return env.GRANTS.get(env.GRANTS.idFromString(objectId));
  } catch {
    return null;
  }
}
