import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, errors, importJWK, type JWK, type JWTPayload, jwtVerify } from "jose";
import * as v from "valibot";
import { AttestationPopClaimsSchema, type Attester, type ClientAttestationClaims, ClientAttestationClaimsSchema } from "../../schemas/attestation";
import { ASSERTION_ALGS } from "../../schemas/client";
import { ClientKeysUnavailable } from "../clients/client-keys";
import type { Config } from "../config";
import { InvalidClientAttestation, UseAttestationChallenge, UseFreshAttestation } from "../errors";
import { claimOnce } from "../replay";
import { attesterKeys } from "./attesters";
import { challengeIsFresh } from "./challenge";

/** draft-ietf-oauth-attestation-based-client-auth-11 §5.1 and §5.2 `typ` values. */
export const ATTESTATION_TYP = "oauth-client-attestation+jwt";
export const ATTESTATION_POP_TYP = "oauth-client-attestation-pop+jwt";

/**
 * Algorithms accepted for Client Attestations and their PoPs (published as
 * `client_attestation_signing_alg_values_supported` and `client_attestation_pop_signing_alg_values_supported`):
 * asymmetric only. The draft allows a MAC for the attestation but discourages it; Latchkey refuses it,
 * as it would make the attester's key a secret shared with us.
 */
export const ATTESTATION_ALGS = ASSERTION_ALGS;

/** Clock skew allowed on the attestation's `exp`, `nbf` and `iat`. */
const SKEW = 30;

/** What the unverified attestation says about itself: enough to find the client and the attester. */
export interface AttestationHeader {
  alg: string;
  iss: string;
  sub: string;
}

/**
 * Reads an attestation before verifying it. draft -11 §5.1: `typ` "MUST be oauth-client-attestation+jwt";
 * `alg` "MUST NOT be none". Throws `invalid_client_attestation` naming what is wrong.
 */
export function peekAttestation(jwt: string): AttestationHeader {
  let header: ReturnType<typeof decodeProtectedHeader>;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(jwt);
    payload = decodeJwt(jwt);
  } catch {
    throw new InvalidClientAttestation("the client attestation is not a well-formed JWT");
  }
  // RFC 7515 §4.1.9: media types are case-insensitive and "application/" may be left out (as jose reads the PoP's).
  const typ = typeof header.typ === "string" ? header.typ.toLowerCase().replace(/^application\//, "") : undefined;
  if (typ !== ATTESTATION_TYP) throw new InvalidClientAttestation(`the client attestation's typ must be ${ATTESTATION_TYP}`);
  if (typeof header.alg !== "string" || !(ATTESTATION_ALGS as readonly string[]).includes(header.alg)) {
    throw new InvalidClientAttestation(`the client attestation's alg is not allowed; use ${ATTESTATION_ALGS.join(", ")}`);
  }
  if (typeof payload.iss !== "string" || !payload.iss) throw new InvalidClientAttestation("the client attestation must name its attester in iss");
  if (typeof payload.sub !== "string" || !payload.sub) throw new InvalidClientAttestation("the client attestation must name the client_id in sub");
  return { alg: header.alg, iss: payload.iss, sub: payload.sub };
}

/** A Client Attestation whose signature, claims and freshness held. */
export interface VerifiedAttestationJwt {
  claims: ClientAttestationClaims;
  /** The Client Instance Key (`cnf.jwk`). */
  jwk: JWK;
  /** Its RFC 7638 SHA-256 thumbprint. */
  jkt: string;
}

/**
 * Verifies the Client Attestation JWT (draft -11 §5.1 and §6.1): signed by the trusted attester with
 * an allowed algorithm, `sub` the client_id, `exp` in the future, `iat` (if any) not older than
 * CLIENT_ATTESTATION_MAX_AGE, and `cnf.jwk` a public key.
 */
export async function verifyAttestationJwt(jwt: string, attester: Attester, cfg: Config, now: number): Promise<VerifiedAttestationJwt> {
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jwt, attesterKeys(attester, cfg), {
      typ: ATTESTATION_TYP,
      algorithms: [...ATTESTATION_ALGS],
      issuer: attester.issuer,
      requiredClaims: ["iss", "sub", "exp", "cnf"],
      clockTolerance: SKEW,
      currentDate: new Date(now * 1000),
    }));
  } catch (error) {
    if (error instanceof errors.JWTExpired) throw new UseFreshAttestation("the client attestation has expired; obtain a fresh one from the attester");
    if (error instanceof ClientKeysUnavailable) throw new InvalidClientAttestation("the attester's keys could not be fetched", error.description);
    if (error instanceof errors.JWTClaimValidationFailed)
      throw new InvalidClientAttestation(`the client attestation's ${error.claim} claim is missing or invalid`);
    throw new InvalidClientAttestation("the client attestation's signature does not verify with its attester's keys", String(error));
  }
  const parsed = v.safeParse(ClientAttestationClaimsSchema, payload);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    throw new InvalidClientAttestation(`the client attestation's ${v.getDotPath(issue) ?? "claims"} is invalid: ${issue.message}`);
  }
  const claims = parsed.output;
  if (claims.iat !== undefined && claims.iat > now + SKEW) throw new InvalidClientAttestation("the client attestation's iat is in the future");
  // draft -11 §6.1: the server checks the attestation is "fresh enough"; `use_fresh_attestation` "MUST be used
  // when the Client Attestation JWT is deemed to be not fresh enough to be acceptable by the server".
  if (claims.iat !== undefined && now - claims.iat > cfg.CLIENT_ATTESTATION_MAX_AGE) {
    throw new UseFreshAttestation(`the client attestation was issued more than ${cfg.CLIENT_ATTESTATION_MAX_AGE} seconds ago`);
  }
  // Without iat, its lifetime is the bound: one valid for longer than the maximum age is not fresh enough.
  if (claims.iat === undefined && claims.exp - now > cfg.CLIENT_ATTESTATION_MAX_AGE) {
    throw new UseFreshAttestation(`the client attestation has no iat and is valid for more than ${cfg.CLIENT_ATTESTATION_MAX_AGE} seconds`);
  }
  const jwk = claims.cnf.jwk as JWK;
  let jkt: string;
  try {
    jkt = await calculateJwkThumbprint(jwk, "sha256");
  } catch {
    throw new InvalidClientAttestation("the client attestation's cnf.jwk is not a valid public key");
  }
  return { claims, jwk, jkt };
}

/**
 * Verifies the Client Attestation PoP JWT (draft -11 §5.2 and §6.1): `typ`, an asymmetric `alg`,
 * signed by the Client Instance Key, `aud` our issuer, `iat` within ATTESTATION_POP_WINDOW, the
 * challenge (required unless ATTESTATION_CHALLENGE is `optional`), and `jti` used once. The `jti` is
 * claimed last, after the `iat` window, so a refused PoP costs no storage.
 */
export async function verifyPop(env: Env, cfg: Config, pop: string, instance: { jwk: JWK; jkt: string }, now: number): Promise<void> {
  let alg: unknown;
  try {
    ({ alg } = decodeProtectedHeader(pop));
  } catch {
    throw new InvalidClientAttestation("the client attestation PoP is not a well-formed JWT");
  }
  if (typeof alg !== "string" || !(ATTESTATION_ALGS as readonly string[]).includes(alg)) {
    throw new InvalidClientAttestation(`the client attestation PoP's alg is not allowed; use ${ATTESTATION_ALGS.join(", ")}`);
  }
  let payload: JWTPayload;
  try {
    const key = await importJWK(instance.jwk, alg);
    ({ payload } = await jwtVerify(pop, key, {
      typ: ATTESTATION_POP_TYP,
      algorithms: [alg],
      audience: cfg.ISSUER,
      requiredClaims: ["aud", "jti", "iat"],
      currentDate: new Date(now * 1000),
      // The same skew as its iat window allows, for an nbf the client set to its iat.
      clockTolerance: cfg.ATTESTATION_POP_WINDOW,
    }));
  } catch (error) {
    if (error instanceof errors.JWTClaimValidationFailed) {
      if (error.claim === "typ") throw new InvalidClientAttestation(`the client attestation PoP's typ must be ${ATTESTATION_POP_TYP}`);
      if (error.claim === "aud") throw new InvalidClientAttestation("the client attestation PoP's aud must be this authorization server's issuer");
      throw new InvalidClientAttestation(`the client attestation PoP's ${error.claim} claim is missing or invalid`);
    }
    if (error instanceof errors.JWTExpired) throw new InvalidClientAttestation("the client attestation PoP has expired");
    throw new InvalidClientAttestation("the client attestation PoP is not signed by the client instance key in the attestation's cnf");
  }
  const parsed = v.safeParse(AttestationPopClaimsSchema, payload);
  if (!parsed.success) throw new InvalidClientAttestation("the client attestation PoP's claims are invalid");
  const { jti, iat, challenge } = parsed.output;
  const window = cfg.ATTESTATION_POP_WINDOW;
  if (iat < now - window) throw new InvalidClientAttestation("the client attestation PoP was issued too long ago");
  if (iat > now + window) throw new InvalidClientAttestation("the client attestation PoP was issued in the future");
  // draft -11 §7: `use_attestation_challenge` "MUST be used when the Client Attestation PoP JWT is not
  // using an expected server-provided challenge"; it goes with an OAuth-Client-Attestation-Challenge header.
  if (challenge !== undefined && !(await challengeIsFresh(cfg.SESSION_SECRET, challenge, now))) {
    throw new UseAttestationChallenge("the client attestation PoP's challenge is not a recent one; use the one in OAuth-Client-Attestation-Challenge");
  }
  if (challenge === undefined && cfg.ATTESTATION_CHALLENGE === "required") {
    throw new UseAttestationChallenge("the authorization server requires a challenge in the client attestation PoP");
  }
  // draft -11 §12.1: the server "SHOULD" keep a replay cache of PoP `jti`s over the window it accepts.
  if (!(await claimOnce(env, "attestation-pop", `${instance.jkt}\u0000${jti}`, Math.floor(iat) + window + 1, now))) {
    throw new InvalidClientAttestation("the client attestation PoP was already used (its jti is single-use)");
  }
}
