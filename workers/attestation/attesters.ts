import type { JWTVerifyGetKey } from "jose";
import type { Attester } from "../../schemas/attestation";
import { findAttesters } from "../clients/cache";
import { clientKeys } from "../clients/client-keys";
import type { Config } from "../config";

/**
 * Trusted Client Attesters (draft-ietf-oauth-attestation-based-client-auth-11 leaves "how the
 * Authorization Server establishes trust in the Client Attester" to deployments): Latchkey trusts the
 * attesters an administrator configured (`/admin/attesters`), found by the attestation's `iss`. Read
 * through the same cache as clients: a change reaches every isolate within CLIENT_CACHE_TTL plus 60 s.
 */

/** The configured attester whose issuer is exactly `iss`, or null. */
export async function findAttester(env: Env, iss: string): Promise<Attester | null> {
  return (await findAttesters(env)).find((a) => a.issuer === iss) ?? null;
}

/** Whether the attester may vouch for `clientId`: one of its patterns names it, or is a prefix ending in `*`. */
export function vouchesFor(attester: Attester, clientId: string): boolean {
  return attester.clients.some((p) => (p.endsWith("*") ? clientId.startsWith(p.slice(0, -1)) : p === clientId));
}

/** The attester's public keys: `jwks` by value, or `jwks_uri` fetched through `safeFetch` and cached like a client's. */
export function attesterKeys(attester: Attester, cfg: Config): JWTVerifyGetKey {
  const keys = clientKeys(attester, cfg);
  if (!keys) throw new Error(`attester ${attester.id} has no keys`);
  return keys;
}
