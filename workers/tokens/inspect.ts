import { decodeJwt } from "jose";
import type { GrantData } from "../../schemas/grant";
import { findClient } from "../clients/cache";
import type { Config } from "../config";
import { grantStub } from "../grants/issue";
import { type AccessTokenClaims, verifyAccessToken } from "./access-token";
import { parseHandle } from "./handles";
import { clientTokenRevoked } from "./revoked";

/** What a presented token turned out to be, for introspection, revocation and userinfo. */
export type Inspected =
  | { kind: "access_token"; claims: AccessTokenClaims; grant: GrantData | null }
  | { kind: "refresh_token"; grant_id: string; hash: string }
  | { kind: "unknown" };

/**
 * Identifies a token Latchkey issued. An access token is verified (signature, typ, issuer, expiry)
 * and, when it derives from a grant, the grant is asked whether it is still active and the token not
 * revoked — one GrantObject call. A client's own token (client_credentials, no grant) is active only
 * while its client exists (the cached record: a deletion counts within the cache bound) and the token
 * was not revoked — one ReplayGuard call (`revoked.ts`). A refresh
 * token is only parsed; its grant decides the rest.
 */
export async function inspectToken(env: Env, cfg: Config, token: string, now: number): Promise<Inspected> {
  const refresh = await parseHandle("refresh", token);
  if (refresh) return { kind: "refresh_token", grant_id: refresh.object_id, hash: refresh.hash };
  const claims = await verifyAccessToken(env, cfg, token, now);
  if (!claims) return { kind: "unknown" };
  if (!claims.gid) {
    // A client ID metadata document that cannot be resolved now counts as a client that is gone.
    const [client, revoked] = await Promise.all([findClient(env, claims.client_id).catch(() => null), clientTokenRevoked(env, claims.jti, now)]);
    return client && !revoked ? { kind: "access_token", claims, grant: null } : { kind: "unknown" };
  }
  const stub = grantStub(env, claims.gid);
  const status = stub ? await stub.status({ jti: claims.jti, now }) : { active: false as const };
  return status.active ? { kind: "access_token", claims, grant: status.data } : { kind: "unknown" };
}

/** Whether a string is shaped like a JWT (for telling revocation requests apart cheaply). */
export function looksLikeJwt(token: string): boolean {
  try {
    decodeJwt(token);
    return true;
  } catch {
    return false;
  }
}
