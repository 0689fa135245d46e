import type { Context } from "hono";
import type { AttestedFacts } from "../../schemas/attestation";
import type { Client } from "../../schemas/client";
import { findClient } from "../clients/cache";
import { now } from "../clock";
import { acceptProof } from "../dpop/accept";
import { readDpopHeader } from "../dpop/proof";
import { InvalidClient, InvalidClientAttestation, InvalidDpopProof, InvalidRequest, UseDpopNonce } from "../errors";
import type { AppEnv } from "../types";
import { findAttester, vouchesFor } from "./attesters";
import { appraise } from "./eat";
import { peekAttestation, verifyAttestationJwt, verifyPop } from "./verify";

/** draft-ietf-oauth-attestation-based-client-auth-11 §6 request header names (case-insensitive). */
export const ATTESTATION_HEADER = "OAuth-Client-Attestation";
export const POP_HEADER = "OAuth-Client-Attestation-PoP";
/** draft -11 §8.2: the response header carrying a fresh challenge. */
export const CHALLENGE_HEADER = "OAuth-Client-Attestation-Challenge";

/** A compact JWS (RFC 7515 §7.1). Repeated header fields reach us joined by ", ", which none contains. */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** The attestation headers of a request: absent, or exactly one of each that is present. */
export function readAttestationHeaders(headers: Headers): { attestation?: string; pop?: string } {
  const one = (name: string) => {
    const value = headers.get(name);
    if (value === null) return undefined;
    // draft -11 §6.1: "There is precisely one OAuth-Client-Attestation HTTP request header field, where
    // its value is a single well-formed JWT" (and likewise for the PoP).
    if (value.includes(",")) throw new InvalidClientAttestation(`more than one ${name} header was sent`);
    if (!COMPACT_JWS.test(value)) throw new InvalidClientAttestation(`the ${name} header is not a compact JWS`);
    return value;
  };
  const attestation = one(ATTESTATION_HEADER);
  const pop = one(POP_HEADER);
  return { ...(attestation !== undefined ? { attestation } : {}), ...(pop !== undefined ? { pop } : {}) };
}

/** What an attestation-authenticated request established: `c.get("attestation")`. */
export interface VerifiedAttestation {
  facts: AttestedFacts;
}

/**
 * Authenticates a client by its Client Attestation (draft -11 §6): with a PoP header, the PoP JWT
 * ("attestation_pop_jwt", method `attest_jwt_client_auth`); without one but with a DPoP proof, the DPoP
 * combined mode (method `attest_jwt_client_auth_dpop`), whose proof must be signed by the `cnf` key and
 * whose freshness is the DPoP nonce. Sets `c.get("attestation")` (and, combined, `c.get("dpop")`).
 */
export async function authenticateByAttestation(c: Context<AppEnv>, input: { client_id?: string; attestation?: string; pop?: string }): Promise<Client> {
  if (input.attestation === undefined) throw new InvalidClientAttestation(`the ${POP_HEADER} header needs an ${ATTESTATION_HEADER} header`);
  const dpopHeader = readDpopHeader(c.req.raw.headers);
  const mode: AttestedFacts["pop"] = input.pop !== undefined ? "attestation_pop_jwt" : "dpop_combined";
  // RFC 9449 §4.3: a malformed DPoP header is invalid_dpop_proof, also where it would have been the PoP.
  if (mode === "dpop_combined") {
    if (!dpopHeader.ok) throw new InvalidDpopProof(dpopHeader.description);
    if (dpopHeader.proof === undefined) throw new InvalidClientAttestation(`the ${POP_HEADER} header is missing (or, in DPoP combined mode, the DPoP proof)`);
  }
  const peeked = peekAttestation(input.attestation);
  // draft -11 §6.1: "If the request contains a client_id parameter, the server MUST verify that the value
  // of this parameter is the same as the client_id value in the sub claim of the Client Attestation JWT."
  if (input.client_id !== undefined && input.client_id !== peeked.sub) throw new InvalidRequest("client_id does not match the client attestation's sub");
  const client = await findClient(c.env, peeked.sub);
  if (!client) throw new InvalidClient("client authentication failed", `unknown client ${peeked.sub}`);
  const method = mode === "attestation_pop_jwt" ? "attest_jwt_client_auth" : "attest_jwt_client_auth_dpop";
  if (client.token_endpoint_auth_method !== method) {
    throw new InvalidClient("client authentication failed", `client registered ${client.token_endpoint_auth_method}, used ${method}`);
  }
  const attester = await findAttester(c.env, peeked.iss);
  if (!attester || !vouchesFor(attester, client.client_id)) {
    throw new InvalidClientAttestation("the client attestation is not from an attester trusted for this client", `iss ${peeked.iss}`);
  }
  const cfg = c.get("cfg");
  const t = now();
  const verified = await verifyAttestationJwt(input.attestation, attester, cfg, t);
  // The instance proves its key first: someone holding only a captured attestation learns nothing more.
  if (input.pop !== undefined) {
    await verifyPop(c.env, cfg, input.pop, verified, t);
  } else if (dpopHeader.ok && dpopHeader.proof !== undefined) {
    // draft -11 §6.2: the DPoP proof's key "MUST" be the Client Instance Key in the attestation's cnf.
    const accepted = await acceptProof(c, dpopHeader.proof);
    if (!accepted.ok) throw accepted.error === "use_dpop_nonce" ? new UseDpopNonce(accepted.description) : new InvalidDpopProof(accepted.description);
    if (accepted.proof.jkt !== verified.jkt)
      throw new InvalidClientAttestation("the DPoP proof is not signed by the client instance key in the attestation's cnf");
    c.set("dpop", accepted.proof);
  }
  const facts = await appraise(verified.claims, attester, { secret: cfg.SESSION_SECRET, now: t, jkt: verified.jkt, pop: mode });
  c.set("attestation", { facts });
  return client;
}
