import { now } from "../clock";
import { InvalidScope, UnauthorizedClient } from "../errors";
import { enforceAttestationPolicy } from "../policy/attestation";
import { type Decision, decide, parseResources, parseScope, pickAudience, scopesForAudience } from "../policy/scope";
import { mintAccessToken } from "../tokens/access-token";
import { binding } from "./issue";
import type { GrantHandler } from "./types";

/**
 * OAuth 2.1 §4.2 client credentials: an agent acting for itself. No Durable Object call: the client
 * and resource come from the cache, the key from isolate memory. `sub` is the client_id, which can
 * never equal a user's `sub` (those start `usr_`), so a client cannot pose as a user (RFC 9700 §4.15).
 * With a DPoP proof the token is bound to its key (RFC 9449 §5); the proof's `jti` is the only
 * Durable Object call (the ReplayGuard), as is a Client Attestation PoP's, and an HTTP message
 * signature's nonce, whose key then binds it. Attestation policy reads the cached client and resource records.
 *
 * Client credentials is for access "previously arranged with the authorization server" (OAuth 2.1 §4.2). A
 * client an administrator registered was arranged; a client that registered itself gets, for a resource, only
 * the scopes the resource opens to such clients (`self_registered_client_credentials_scopes`), and nothing
 * from a resource that opens none.
 */
export const clientCredentials: GrantHandler = {
  grant_type: "client_credentials",
  async handle(c) {
    const params = c.get("params");
    const cfg = c.get("cfg");
    const client = c.get("client");
    const bound = binding(c);
    const requested = parseScope(params.get("scope"));
    const resources = parseResources(params.all("resource"));
    const decision = await decide(c.env, client, requested, resources);
    if (decision.scope.includes("openid") || decision.scope.includes("offline_access")) {
      throw new InvalidScope("openid and offline_access concern a user and cannot be granted to a client acting for itself");
    }
    const aud = pickAudience(resources, resources, cfg.ISSUER);
    let scope = await scopesForAudience(c.env, decision.scope, aud, cfg.ISSUER);
    if (client.registered_by !== "admin") scope = arranged(decision, aud, scope, requested !== undefined);
    const outcome = enforceAttestationPolicy(c, { scope, resources: decision.resources.filter((r) => r.resource === aud) });
    const at = await mintAccessToken(c.env, cfg, {
      sub: client.client_id,
      aud,
      client_id: client.client_id,
      scope,
      jkt: bound.jkt,
      jwk: bound.jwk,
      now: now(),
      ...outcome,
    });
    const response = { access_token: at.token, token_type: bound.token_type, expires_in: at.expires_in, ...(scope.length ? { scope: scope.join(" ") } : {}) };
    return { response, sub: client.client_id, aud, jti: at.claims.jti };
  },
};

/** What a client that registered itself may have of `scope` for `aud` (see above); throws when that is nothing it asked for. */
function arranged(decision: Decision, aud: string, scope: string[], explicit: boolean): string[] {
  const resource = decision.resources.find((r) => r.resource === aud);
  if (!resource)
    throw new UnauthorizedClient("a client that registered itself gets client_credentials tokens only for a resource that opens scopes to it: name one");
  const open = resource.self_registered_client_credentials_scopes ?? [];
  if (!open.length) {
    throw new UnauthorizedClient(
      `${aud} grants client_credentials only to clients an administrator registered, and opens no scope to clients that registered themselves`,
    );
  }
  const closed = scope.filter((s) => !open.includes(s));
  if (explicit && closed.length) throw new InvalidScope(`scope ${closed.join(" ")} of ${aud} is not open to clients that registered themselves`);
  const granted = scope.filter((s) => open.includes(s));
  // With no scope asked for, the default (the client's registered scope) may hold none of the open ones.
  if (!explicit && !granted.length) throw new InvalidScope(`no scope this client registered is open to it at ${aud}; ask for one of: ${open.join(" ")}`);
  return granted;
}
