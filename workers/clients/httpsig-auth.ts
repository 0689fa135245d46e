import type { JWK } from "jose";
import type { Client } from "../../schemas/client";
import { now } from "../clock";
import type { Config } from "../config";
import { InvalidClient } from "../errors";
import { targetOnOrigin, verifyRequestSignature } from "../httpsig/verify";
import { claimOnce } from "../replay";
import { findClient } from "./cache";
import { ClientKeysUnavailable, clientJwk } from "./client-keys";

/** draft-richer-oauth-httpsig-03 §3.3: the tag of a token request signature. */
export const TOKEN_REQUEST_TAG = "httpsig-oauth-token-request";
/** The method name (see `AUTH_METHODS` in schemas/client.ts for why this one). */
export const HTTPSIG_CLIENT_AUTH = "httpsig_client_auth";

/** The key an authenticated request was signed with: the token endpoint binds the access token to it. */
export interface SignatureKey {
  /** The public key (public members only), for `cnf.jwk` (RFC 7800 §3.2). */
  jwk: JWK;
  kid: string;
}

/** Public members of the JWKs we accept (RFC 7518 §6.2.1, §6.3.1; RFC 8037 §2). */
const PUBLIC_MEMBERS = ["kty", "crv", "x", "y", "n", "e", "kid", "alg"] as const;

/**
 * Authenticates a client by an HTTP message signature (RFC 9421) on the request, under the profile of
 * draft-richer-oauth-httpsig-03 §3.3: exactly one signature tagged `httpsig-oauth-token-request`, covering
 * `@method`, `@target-uri` (compared with ISSUER's origin plus this path, never the Host header),
 * `content-digest` (the body's digest, verified) and `authorization` when the request has one; `created`
 * within HTTPSIG_WINDOW, `expires` if present, a single-use `nonce`, a `keyid` naming one of the client's
 * keys (`jwks` or `jwks_uri`), no `alg`. The client names itself by the `client_id` form parameter, which
 * the covered digest protects. Every failure is `invalid_client`.
 */
export async function authenticateBySignature(
  env: Env,
  cfg: Config,
  request: { method: string; url: string; headers: Headers; body: () => Promise<Uint8Array> },
  clientId: string | undefined,
): Promise<{ client: Client; key: SignatureKey }> {
  if (clientId === undefined) throw new InvalidClient("client_id is required with an HTTP message signature (httpsig_client_auth)");
  const client = await findClient(env, clientId);
  if (!client) throw new InvalidClient("client authentication failed", `unknown client ${clientId}`);
  if (client.token_endpoint_auth_method !== HTTPSIG_CLIENT_AUTH) {
    throw new InvalidClient("client authentication failed", `client registered ${client.token_endpoint_auth_method}, used ${HTTPSIG_CLIENT_AUTH}`);
  }
  // draft §3.2 introduces a runtime key in Signature-Key; a client authenticating by signature uses a registered one.
  if (request.headers.has("signature-key"))
    throw new InvalidClient("Signature-Key is not supported; sign with a key registered in the client's jwks or jwks_uri");
  const url = new URL(request.url);
  const t = now();
  const result = await verifyRequestSignature(request, {
    tag: TOKEN_REQUEST_TAG,
    // draft §3.3: "The covered components MUST include" @method, @target-uri, content-digest, and "the
    // client's authentication, if available" — the Authorization field whenever the request has one.
    required: ["@method", "@target-uri", "content-digest", ...(request.headers.has("authorization") ? ["authorization"] : [])],
    targetUri: targetOnOrigin(new URL(cfg.ISSUER).origin, url),
    now: t,
    windowSeconds: cfg.HTTPSIG_WINDOW,
    single: true,
    body: request.body,
    keyFor: async (keyid) => {
      try {
        const jwk = await clientJwk(client, cfg, keyid);
        // draft §4: the request fails if "The key named in kid cannot be found or is not associated with the requesting client".
        return jwk ? { ok: true, value: jwk } : { ok: false, description: `keyid ${keyid} does not name a key of this client` };
      } catch (error) {
        if (error instanceof ClientKeysUnavailable) return { ok: false, description: `the client's jwks_uri could not be used: it ${error.description}` };
        throw error;
      }
    },
    claimNonce: (nonce, until) => claimOnce(env, "httpsig-nonce", `${client.client_id}\u0000${nonce}`, until, t),
  });
  if (!result.ok) throw new InvalidClient(result.description);
  const jwk: JWK = {};
  for (const member of PUBLIC_MEMBERS) if (result.value.jwk[member] !== undefined) jwk[member] = result.value.jwk[member];
  jwk.alg = result.value.alg;
  return { client, key: { jwk, kid: result.value.keyid } };
}

/**
 * Whether the request carries a signature tagged for a token request: that is how the method is
 * recognised. A substring test only picks the method; the field is parsed and checked in full after.
 */
export function hasTokenRequestSignature(headers: Headers): boolean {
  return headers.get("signature-input")?.includes(TOKEN_REQUEST_TAG) ?? false;
}
