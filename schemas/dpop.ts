import * as v from "valibot";

/** Longest `jti` accepted; RFC 9449 §11.1 asks servers to "reject DPoP proof JWTs with unnecessarily large jti values". */
export const MAX_DPOP_JTI = 256;

/**
 * RFC 9449 §4.2 claims of a DPoP proof JWT, read after its signature verified. Whether `htm`, `htu`,
 * `iat`, `ath` and `nonce` fit the request is checked afterwards, by `workers/dpop/proof.ts`.
 */
export const DpopProofClaimsSchema = v.object({
  /** Unique identifier of the proof, for replay detection (§11.1). */
  jti: v.pipe(v.string(), v.minLength(1), v.maxLength(MAX_DPOP_JTI)),
  /** The HTTP method of the request (RFC 9110 §9.1). */
  htm: v.string(),
  /** The HTTP target URI of the request, without query and fragment. */
  htu: v.string(),
  /** Creation time, seconds since the epoch (RFC 7519 §4.1.6). */
  iat: v.pipe(v.number(), v.finite()),
  /** base64url SHA-256 of the access token, at a protected resource (§7). */
  ath: v.optional(v.string()),
  /** A nonce the server provided in a DPoP-Nonce header (§8). */
  nonce: v.optional(v.pipe(v.string(), v.minLength(1))),
});

export type DpopProofClaims = v.InferOutput<typeof DpopProofClaimsSchema>;

/** The wire-safe `error_description` for a claim that is missing or malformed. */
const PROBLEMS: Record<keyof DpopProofClaims, string> = {
  jti: `the DPoP proof must carry a jti of 1 to ${MAX_DPOP_JTI} characters`,
  htm: "the DPoP proof must carry htm",
  htu: "the DPoP proof must carry htu",
  iat: "the DPoP proof must carry iat",
  ath: "the DPoP proof's ath must be a string",
  nonce: "the DPoP proof's nonce must be a non-empty string",
};

/** Parses the claims; on failure, describes the first bad one in schema order. */
export function parseDpopProofClaims(payload: unknown): { ok: true; claims: DpopProofClaims } | { ok: false; description: string } {
  const result = v.safeParse(DpopProofClaimsSchema, payload);
  if (result.success) return { ok: true, claims: result.output };
  const key = v.getDotPath(result.issues[0]);
  return { ok: false, description: key && key in PROBLEMS ? PROBLEMS[key as keyof DpopProofClaims] : "the DPoP proof's claims are malformed" };
}
