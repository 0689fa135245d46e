import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, jwtVerify } from "jose";
import { ASSERTION_ALGS, type Client } from "../../schemas/client";
import { now } from "../clock";
import type { Config } from "../config";
import { InvalidClient } from "../errors";
import { claimOnce, releaseClaim } from "../replay";
import { findClient } from "./cache";
import { ClientKeysUnavailable, clientKeys } from "./client-keys";

/** RFC 7523 §2.2 `client_assertion_type`. */
export const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** Where used assertion `jti`s are remembered (`replay.ts`). */
const ASSERTION_NAMESPACE = "client-assertion";

/** Clock skew allowed on `exp`, `nbf` and `iat`. */
const SKEW = 30;

export interface PresentedAssertion {
  /** The `client_id` parameter, if sent (RFC 7521 §4.2: optional, but must then name the same client). */
  client_id?: string;
  client_assertion: string;
  client_assertion_type?: string;
}

/**
 * Authenticates a client by a JWT it signed (`private_key_jwt`: RFC 7523 §2.2 and §3, as updated by
 * RFC 10070). Returns the client, or throws `invalid_client` (RFC 7521 §4.2.1) saying what was wrong.
 * The jti is claimed last, once everything else holds, so a forged assertion cannot burn a real one's jti;
 * `release` gives it back when the request it authenticated is refused later, as nothing was issued for it.
 */
export async function authenticateByAssertion(env: Env, cfg: Config, input: PresentedAssertion): Promise<{ client: Client; release: () => Promise<void> }> {
  if (input.client_assertion_type !== JWT_BEARER) throw new InvalidClient(`client_assertion_type must be ${JWT_BEARER}`);
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(input.client_assertion);
    unverified = decodeJwt(input.client_assertion);
  } catch {
    throw new InvalidClient("the client assertion is not a well-formed JWT");
  }
  // RFC 7523 §3: iss and sub "MUST" both be the client_id for client authentication.
  const clientId = input.client_id ?? unverified.sub;
  if (typeof clientId !== "string" || unverified.iss !== clientId || unverified.sub !== clientId) {
    throw new InvalidClient("the client assertion's iss and sub must both be the client_id");
  }
  const client = await findClient(env, clientId);
  if (!client) throw new InvalidClient("client authentication failed", `unknown client ${clientId}`);
  if (client.token_endpoint_auth_method !== "private_key_jwt") {
    throw new InvalidClient("client authentication failed", `client registered ${client.token_endpoint_auth_method}, used private_key_jwt`);
  }
  const algorithms: string[] = client.token_endpoint_auth_signing_alg ? [client.token_endpoint_auth_signing_alg] : [...ASSERTION_ALGS];
  if (typeof header.alg !== "string" || !algorithms.includes(header.alg)) {
    throw new InvalidClient(`the client assertion's alg is not allowed; use ${algorithms.join(", ")}`);
  }
  // RFC 10070: "Client authentication JWTs SHOULD be explicitly typed by using the typ header parameter
  // value client-authentication+jwt"; assertions made before it have no typ or a generic JWT one.
  const typ = header.typ?.toLowerCase().replace(/^application\//, "");
  if (typ !== undefined && typ !== "client-authentication+jwt" && typ !== "jwt") {
    throw new InvalidClient("the client assertion's typ must be client-authentication+jwt");
  }
  const keys = clientKeys(client, cfg);
  if (!keys) throw new InvalidClient("client authentication failed", "private_key_jwt client without keys");
  const t = now();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(input.client_assertion, keys, {
      algorithms,
      issuer: clientId,
      subject: clientId,
      requiredClaims: ["exp", "jti"],
      clockTolerance: SKEW,
      currentDate: new Date(t * 1000),
    }));
  } catch (error) {
    throw verificationError(error);
  }
  // RFC 10070 §4: "the aud (audience) claim value MUST use the issuer identifier [RFC8414] of the
  // authorization server as its sole value"; "the token endpoint URL ... MUST NOT be used". Stricter
  // still, Latchkey takes only the bare string: no array, not even one holding just the issuer.
  if (typeof payload.aud !== "string" || payload.aud !== cfg.ISSUER) {
    throw new InvalidClient("the client assertion's aud must be the issuer identifier, as a single string (RFC 10070)");
  }
  const exp = payload.exp as number;
  const max = cfg.CLIENT_ASSERTION_MAX_LIFETIME;
  if (exp - t > max + SKEW || (typeof payload.iat === "number" && exp - payload.iat > max)) {
    throw new InvalidClient(`the client assertion's lifetime must not exceed ${max} seconds`);
  }
  if (typeof payload.iat === "number" && payload.iat > t + SKEW) throw new InvalidClient("the client assertion's iat is in the future");
  if (typeof payload.jti !== "string" || payload.jti.length > 256)
    throw new InvalidClient("the client assertion's jti must be a string of at most 256 characters");
  // RFC 7523 §3: the AS "MAY ensure that JWTs are not replayed by maintaining the set of used jti
  // values for the length of time for which the JWT would be considered valid"; OIDC Core §9 requires it.
  const replayId = `${clientId}\u0000${payload.jti}`;
  if (!(await claimOnce(env, ASSERTION_NAMESPACE, replayId, exp + SKEW, t))) {
    throw new InvalidClient("the client assertion was already used (its jti is single-use)");
  }
  return { client, release: () => releaseClaim(env, ASSERTION_NAMESPACE, replayId) };
}

/** The `invalid_client` for a JWT that jose refused. */
function verificationError(error: unknown): InvalidClient {
  if (error instanceof ClientKeysUnavailable) return new InvalidClient(`the client's jwks_uri could not be used: it ${error.description}`);
  if (error instanceof errors.JWTExpired) return new InvalidClient("the client assertion has expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.reason === "missing") return new InvalidClient(`the client assertion must contain ${error.claim}`);
    if (error.claim === "nbf") return new InvalidClient("the client assertion is not yet valid (nbf)");
    return new InvalidClient(`the client assertion's ${error.claim} claim is invalid`);
  }
  if (error instanceof errors.JWKSTimeout) return new InvalidClient("the client's jwks_uri could not be used: it did not answer in time");
  if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys || error instanceof errors.JWSSignatureVerificationFailed) {
    return new InvalidClient("the client assertion's signature does not verify with the client's registered keys");
  }
  return new InvalidClient("the client assertion is invalid", String(error));
}
