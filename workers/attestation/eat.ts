import type { AttestedFacts, Attester, ClientAttestationClaims } from "../../schemas/attestation";
import { InvalidClientAttestation, UseFreshAttestation } from "../errors";
import { challengeIsFresh } from "./challenge";

/**
 * Attestation results (RFC 9334 RATS, passport model) carried as EAT claims (RFC 9711) inside the
 * Client Attestation JWT: the Client Attester plays the RATS Verifier, its attestation is the
 * Attestation Result, Latchkey the Relying Party. Latchkey appraises no raw evidence; it checks the
 * result's freshness and profile and turns the claims it signed into facts for policy.
 */
export async function appraise(
  claims: ClientAttestationClaims,
  attester: Attester,
  context: { secret: string; now: number; jkt: string; pop: AttestedFacts["pop"] },
): Promise<AttestedFacts> {
  // RFC 9711 §4.3.2: a recipient "MUST" reject an EAT whose profile it does not understand; an
  // attester configured with profiles vouches only under them.
  if (attester.eat_profiles && (claims.eat_profile === undefined || !attester.eat_profiles.includes(claims.eat_profile))) {
    throw new InvalidClientAttestation("the client attestation's eat_profile is not one this server accepts from its attester");
  }
  // RFC 9711 §4.1: eat_nonce "is used to prevent replay"; ours are attestation challenges. One that is
  // not recent means the result predates what we asked for: the client needs a fresh attestation.
  if (claims.eat_nonce !== undefined) {
    const nonces = [claims.eat_nonce].flat();
    const fresh = await Promise.all(nonces.map((n) => challengeIsFresh(context.secret, n, context.now)));
    if (!fresh.includes(true)) throw new UseFreshAttestation("the client attestation's eat_nonce is not a recent challenge from this server");
  }
  const facts: AttestedFacts = { iss: claims.iss, jkt: context.jkt, pop: context.pop };
  for (const name of ["eat_profile", "swname", "swversion", "dbgstat", "runtime", "model_provider", "model"] as const) {
    const value = claims[name];
    if (value !== undefined) Object.assign(facts, { [name]: value });
  }
  return facts;
}

/**
 * Compares versions as semantic versions do: dot-separated numbers (`1.10.0` > `1.9`), build metadata
 * (`+build.5`) ignored, a pre-release (`2.0.0-rc.1`) below its release. A version with no numeric core is lowest.
 */
export function versionAtLeast(version: string, minimum: string): boolean {
  const parse = (s: string) => {
    const m = /^(\d+(?:\.\d+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/.exec(s);
    return m ? { core: (m[1] as string).split(".").map(Number), pre: m[2] } : null;
  };
  const a = parse(version);
  const b = parse(minimum);
  if (!a || !b) return false;
  for (let i = 0; i < Math.max(a.core.length, b.core.length); i++) {
    const d = (a.core[i] ?? 0) - (b.core[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  // Same core: a release is at least anything; a pre-release is below the release.
  if (a.pre === undefined) return true;
  if (b.pre === undefined) return false;
  return a.pre.localeCompare(b.pre, "en", { numeric: true }) >= 0;
}
