import { base64url, type JWK, type JWTPayload, jwtVerify, SignJWT } from "jose";
import type { AttestedFacts } from "../../schemas/attestation";
import type { Config } from "../config";
import { randomToken } from "../crypto";
import type { AttestationOutcome } from "../policy/attestation";
import { ownKeys, signingKey } from "./keys";

/** RFC 9068 §2.1: the media type of a JWT access token. */
export const AT_TYP = "at+jwt";

/** Claims of a Latchkey access token (RFC 9068 §2.2). */
export interface AccessTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  /** The resource indicator (RFC 8707), or the issuer for tokens meant for userinfo. */
  aud: string;
  client_id: string;
  iat: number;
  exp: number;
  jti: string;
  /** RFC 9068 §2.2.3: space-separated scopes. */
  scope?: string;
  auth_time?: number;
  /** The GrantObject this token derives from; absent for client_credentials. Lets introspection see revocation. */
  gid?: string;
  /**
   * RFC 9449 §6.1 `jkt`: the token is DPoP-bound to the key with this RFC 7638 thumbprint; or RFC 7800
   * §3.2 `jwk`: it is bound to this public key for HTTP message signatures (draft-richer-oauth-httpsig,
   * which leaves the confirmation method open; the key itself lets a resource verify without the client's
   * registration).
   */
  cnf?: { jkt?: string; jwk?: JWK };
  /**
   * The verified facts about the client instance from its Client Attestation (draft-ietf-oauth-attestation-based-client-auth-11,
   * EAT claims of RFC 9711), present when the client authenticated with one: README "Attested facts".
   */
  attested?: AttestedFacts;
}

export interface MintedAccessToken {
  token: string;
  claims: AccessTokenClaims;
  expires_in: number;
}

/**
 * Signs an RFC 9068 access token with the current ES256 key; with `jkt`, DPoP-bound (RFC 9449 §6.1); with
 * `jwk`, bound for HTTP message signatures;
 * `max_lifetime` shortens ACCESS_TOKEN_TTL (attestation policy for unattested clients); `attested` is
 * carried as the `attested` claim.
 */
export async function mintAccessToken(
  env: Env,
  cfg: Config,
  input: {
    sub: string;
    aud: string;
    client_id: string;
    scope: string[];
    auth_time?: number;
    gid?: string;
    jkt?: string;
    jwk?: JWK;
    now: number;
  } & AttestationOutcome,
): Promise<MintedAccessToken> {
  const ttl = Math.min(cfg.ACCESS_TOKEN_TTL, input.max_lifetime ?? Infinity);
  const { kid, key } = await signingKey(env, "ES256", input.now);
  const claims: AccessTokenClaims = {
    iss: cfg.ISSUER,
    sub: input.sub,
    aud: input.aud,
    client_id: input.client_id,
    iat: input.now,
    exp: input.now + ttl,
    jti: randomToken(16),
    ...(input.scope.length ? { scope: input.scope.join(" ") } : {}),
    ...(input.auth_time !== undefined ? { auth_time: input.auth_time } : {}),
    ...(input.gid ? { gid: input.gid } : {}),
    ...(input.jkt ? { cnf: { jkt: input.jkt } } : input.jwk ? { cnf: { jwk: input.jwk } } : {}),
    ...(input.attested ? { attested: input.attested } : {}),
  };
  const token = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: AT_TYP, kid }).sign(key);
  return { token, claims, expires_in: ttl };
}

/** Verifies a token Latchkey issued (signature, `typ`, issuer, expiry); null if it is not valid. */
export async function verifyAccessToken(env: Env, cfg: Config, token: string, now: number): Promise<AccessTokenClaims | null> {
  try {
    const { payload } = await jwtVerify<AccessTokenClaims>(token, await ownKeys(env, now), {
      issuer: cfg.ISSUER,
      typ: AT_TYP,
      algorithms: ["ES256"],
      currentDate: new Date(now * 1000),
      requiredClaims: ["sub", "aud", "client_id", "exp", "iat", "jti"],
    });
    return typeof payload.aud === "string" ? payload : null;
  } catch {
    return null;
  }
}

/** OIDC Core §3.1.3.6 `at_hash`: left half of the SHA-256 of the token, base64url. */
export async function atHash(token: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token)));
  return base64url.encode(digest.slice(0, 16));
}
