import { errors, type JWK, type JWTPayload, jwtVerify } from "jose";
import { createKeySet, KeysUnavailable } from "./jwks-cache";

/** What a resource server needs to know to trust Latchkey's access tokens. */
export interface VerifierOptions {
  /** The authorization server's issuer identifier (RFC 8414 `issuer`), compared exactly. */
  issuer: string;
  /** This resource server's resource identifier (RFC 8707); tokens must carry it as `aud`. */
  resource: string;
  /** Where the issuer publishes its keys. Default: `${issuer}/jwks`. */
  jwksUri?: string;
  /** Accepted clock skew for `exp`, `iat` and `nbf`, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** Accepted signature algorithms. Default `["ES256"]`, what Latchkey signs access tokens with. */
  algorithms?: string[];
  /** Fetch used for the JWKS (tests, service bindings). Default: global fetch. */
  fetch?: typeof fetch;
}

/** The claims of a verified access token (RFC 9068 §2.2). */
export interface AccessToken extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  client_id: string;
  exp: number;
  iat: number;
  jti: string;
  scope?: string;
  /**
   * RFC 9449 §6.1 `jkt`: the token is DPoP-bound to the key with this thumbprint; RFC 7800 §3.2 `jwk`: it is
   * bound to this key for HTTP message signatures (draft-richer-oauth-httpsig). `requireAccessToken` checks either.
   */
  cnf?: { jkt?: string; jwk?: JWK };
  /**
   * What Latchkey verified about the client instance from its Client Attestation (present only when the
   * client authenticated with one): the attester (`iss`), the instance key's thumbprint (`jkt`), how it
   * proved the key (`pop`), and the EAT (RFC 9711) and agent claims the attester signed.
   */
  attested?: {
    iss: string;
    jkt: string;
    pop: "attestation_pop_jwt" | "dpop_combined";
    eat_profile?: string;
    swname?: string;
    swversion?: string;
    dbgstat?: string;
    runtime?: string;
    model_provider?: string;
    model?: string;
  };
  /** The scopes as a list (from the space-separated `scope` claim). */
  scopes: string[];
}

export type VerifyResult =
  | { ok: true; token: AccessToken }
  | { ok: false; description: string }
  /**
   * The issuer's keys could not be had, so the token could not be checked: the server's problem, answered
   * with 503 and `Retry-After`, never `invalid_token` (which sends MCP clients to refresh or re-authorize).
   */
  | { ok: false; unavailable: true; description: string; retryAfterSeconds: number };

/**
 * A verifier for Latchkey access tokens: signature against the issuer's JWKS, `typ: at+jwt` (RFC 9068 §4),
 * issuer, audience equal to this resource, expiry with a small clock skew. The JWKS is kept per verifier
 * (so per isolate) for 10 minutes (`jwks-cache.ts`): one fetch at a time, none within 30 seconds of the
 * last (an unknown `kid` refetches at most that often), and the last good set kept while the endpoint
 * fails. Only with no set at all, or a `kid` it could not look for, is the result `unavailable`.
 */
export function createTokenVerifier(options: VerifierOptions): (token: string) => Promise<VerifyResult> {
  const keys = createKeySet({ url: new URL(options.jwksUri ?? `${options.issuer}/jwks`).href, ...(options.fetch ? { fetch: options.fetch } : {}) });
  return async (token) => {
    try {
      const { payload } = await jwtVerify<AccessToken>(token, keys, {
        issuer: options.issuer,
        audience: options.resource,
        typ: "at+jwt",
        algorithms: options.algorithms ?? ["ES256"],
        clockTolerance: options.clockToleranceSeconds ?? 30,
        requiredClaims: ["exp", "iat", "sub", "client_id", "jti"],
      });
      return { ok: true, token: { ...payload, scopes: payload.scope ? payload.scope.split(" ") : [] } };
    } catch (error) {
      if (error instanceof KeysUnavailable)
        return { ok: false, unavailable: true, description: "the authorization server's keys cannot be fetched", retryAfterSeconds: error.retryAfterSeconds };
      return { ok: false, description: describe(error) };
    }
  };
}

/** A short, safe reason for a rejected token (for `error_description`). */
function describe(error: unknown): string {
  if (error instanceof errors.JWTExpired) return "the access token has expired";
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === "aud") return "the access token is for another resource";
    if (error.claim === "iss") return "the access token is from an untrusted issuer";
    if (error.claim === "typ") return "the token is not an access token";
    return `the access token's ${error.claim} claim is invalid`;
  }
  if (error instanceof errors.JWKSNoMatchingKey) return "the access token is signed with an unknown key";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the access token signature is invalid";
  if (error instanceof errors.JOSEAlgNotAllowed) return "the access token is signed with a disallowed algorithm";
  return "the access token is malformed";
}
