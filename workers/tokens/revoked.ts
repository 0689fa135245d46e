import { claimOnce, wasClaimed } from "../replay";

/**
 * Revoked `client_credentials` access tokens. Such a token has no grant to record its revocation in, so
 * its `jti` is remembered in the ReplayGuard until the token expires, and introspection asks there.
 * Issuing one asks nothing, so `client_credentials` keeps its budget of no Durable Object call.
 */
const NAMESPACE = "revoked-access-token";

/** Denies the token `jti` until `exp`. Revoking it again changes nothing. */
export async function revokeClientToken(env: Env, jti: string, exp: number, now: number): Promise<{ ok: true }> {
  await claimOnce(env, NAMESPACE, jti, exp, now);
  return { ok: true };
}

/** Whether the token `jti` was revoked. */
export function clientTokenRevoked(env: Env, jti: string, now: number): Promise<boolean> {
  return wasClaimed(env, NAMESPACE, jti, now);
}
