import * as v from "valibot";
import { JwksSchema, PublicJwkSchema } from "./client";

/**
 * Wire shapes of attestation-based client authentication (draft-ietf-oauth-attestation-based-client-auth-11)
 * and of the attestation results (EAT, RFC 9711) Latchkey reads from a Client Attestation, plus the admin
 * records that say whom to trust and what policy asks for.
 */

/** RFC 9711 §4.2.9 debug status names, in JSON (EAT JWT) form. */
export const DBGSTAT = ["enabled", "disabled", "disabled-since-boot", "disabled-permanently", "disabled-fully-and-permanently"] as const;

const text = v.pipe(v.string(), v.minLength(1), v.maxLength(200));
const texts = v.pipe(v.array(text), v.minLength(1), v.maxLength(50));
const httpsUrl = v.pipe(v.string(), v.url("must be an absolute URL"), v.maxLength(2000));

/** A client_id, or a prefix of client_ids ending in `*` (`agents-*`); `*` alone matches every client. */
const clientPattern = v.pipe(v.string(), v.minLength(1), v.maxLength(300), v.regex(/^[^*]*\*?$/, "may hold one *, at the end"));

/** `POST /admin/attesters`: a trusted Client Attester (draft -11 §1: the attestation's issuer). */
export const AttesterInputSchema = v.pipe(
  v.object({
    /** The `iss` of the Client Attestations it signs, compared exactly. */
    issuer: v.pipe(v.string(), v.minLength(1), v.maxLength(2000)),
    /** Shown in admin reads and logs. */
    name: v.optional(text),
    /** Its public signing keys, by value. */
    jwks: v.optional(JwksSchema),
    /** Where it publishes them (fetched under the outbound-fetch rules, like a client's `jwks_uri`). */
    jwks_uri: v.optional(httpsUrl),
    /** The clients it may vouch for: client_ids, or prefixes ending in `*`. */
    clients: v.pipe(v.array(clientPattern), v.minLength(1), v.maxLength(100)),
    /** RFC 9711 §4.3.2 `eat_profile` values accepted in its attestations; absent, every profile or none is accepted. */
    eat_profiles: v.optional(texts),
  }),
  v.check((a) => (a.jwks === undefined) !== (a.jwks_uri === undefined), "exactly one of jwks and jwks_uri is required"),
);
export type AttesterInput = v.InferOutput<typeof AttesterInputSchema>;

/** A trusted attester as the Registry stores it. */
export interface Attester extends AttesterInput {
  id: string;
  created_at: number;
}

/**
 * Declarative attestation policy, kept on a client or a resource record (`PUT /admin/policies/...`).
 * Every policy that applies to a request must hold: the client's and that of each resource involved.
 */
export const AttestationPolicySchema = v.object({
  /** `true`: every token needs an attested client; a list: only tokens carrying one of these scopes. */
  require_attestation: v.optional(v.union([v.boolean(), v.pipe(v.array(v.pipe(v.string(), v.maxLength(100))), v.maxLength(100))]), false),
  /** Issuers of the attesters whose attestations count here; absent, every trusted attester counts. */
  attesters: v.optional(texts),
  /** Accepted `model_provider` values (Latchkey claim, see README "Attested facts"). */
  model_providers: v.optional(texts),
  /** Accepted `model` values. */
  models: v.optional(texts),
  /** Accepted `runtime` values. */
  runtimes: v.optional(texts),
  /** Accepted RFC 9711 §4.2.6 `swname` values. */
  swnames: v.optional(texts),
  /** Lowest accepted RFC 9711 §4.2.7 `swversion`, compared as dot-separated numbers (`1.4.0`). */
  min_swversion: v.optional(v.pipe(v.string(), v.regex(/^\d+(\.\d+)*$/, "must be dot-separated numbers"))),
  /** RFC 9711 §4.2.9 `dbgstat` values accepted; an attestation without `dbgstat` then fails. */
  dbgstat: v.optional(v.pipe(v.array(v.picklist(DBGSTAT)), v.minLength(1))),
  /** Longest access-token lifetime, seconds, for a client that presented no attestation. */
  unattested_max_token_lifetime: v.optional(v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(86_400))),
});
export type AttestationPolicy = v.InferOutput<typeof AttestationPolicySchema>;

const version = v.pipe(v.string(), v.maxLength(100));

/**
 * Client Attestation JWT claims (draft -11 §5.1) and the EAT claims (RFC 9711 §4) Latchkey reads from
 * it. Latchkey also requires `iss`: it is how the trusted attester is found. Other claims are ignored.
 */
export const ClientAttestationClaimsSchema = v.object({
  iss: v.pipe(v.string(), v.minLength(1), v.maxLength(2000)),
  sub: v.pipe(v.string(), v.minLength(1), v.maxLength(2000)),
  exp: v.number(),
  iat: v.optional(v.number()),
  cnf: v.object({ jwk: PublicJwkSchema }, "cnf must hold the Client Instance public key as jwk"),
  /** RFC 9711 §4.1: a string, or an array of strings. */
  eat_nonce: v.optional(
    v.union([v.pipe(v.string(), v.maxLength(200)), v.pipe(v.array(v.pipe(v.string(), v.maxLength(200))), v.minLength(1), v.maxLength(10))]),
  ),
  eat_profile: v.optional(v.pipe(v.string(), v.maxLength(500))),
  swname: v.optional(text),
  /** RFC 9711 §4.2.7: `[version, ? scheme]`; a bare string is taken too. The version is what is kept. */
  swversion: v.optional(
    v.pipe(
      v.union([version, v.tuple([version]), v.tuple([version, v.number()])]),
      v.transform((x) => (typeof x === "string" ? x : x[0])),
    ),
  ),
  dbgstat: v.optional(v.picklist(DBGSTAT)),
  runtime: v.optional(text),
  model_provider: v.optional(text),
  model: v.optional(text),
});
export type ClientAttestationClaims = v.InferOutput<typeof ClientAttestationClaimsSchema>;

/** Client Attestation PoP JWT claims (draft -11 §5.2). */
export const AttestationPopClaimsSchema = v.object({
  aud: v.union([v.string(), v.array(v.string())]),
  jti: v.pipe(v.string(), v.minLength(1), v.maxLength(256)),
  iat: v.number(),
  challenge: v.optional(v.pipe(v.string(), v.maxLength(200))),
});

/**
 * The verified facts about the client instance: the `attested` claim of access tokens and what
 * attestation policy is evaluated against. Only claims the trusted attester signed are here.
 */
export interface AttestedFacts {
  /** The attester that vouched (its `iss`). */
  iss: string;
  /** RFC 7638 thumbprint of the Client Instance Key (`cnf.jwk`). */
  jkt: string;
  /** How the client proved the key: `attestation_pop_jwt` or `dpop_combined` (draft -11 §6). */
  pop: "attestation_pop_jwt" | "dpop_combined";
  eat_profile?: string;
  swname?: string;
  swversion?: string;
  dbgstat?: (typeof DBGSTAT)[number];
  runtime?: string;
  model_provider?: string;
  model?: string;
}
