import { base64url, calculateJwkThumbprint, decodeProtectedHeader, EmbeddedJWK, errors, type JWK, type JWTPayload, jwtVerify } from "jose";
import { parseDpopProofClaims } from "../../schemas/dpop";

/**
 * DPoP proof checking (RFC 9449 §4.3), shared by the authorization server (token endpoint, userinfo)
 * and the resource-server kit. Pure: no bindings, no configuration, no clock of its own. What depends
 * on the server — whether a nonce is required, and remembering `jti`s — is the caller's job, with the
 * `DpopProof` this returns.
 */

/**
 * RFC 9449 §4.2: `alg` is "an identifier for a JWS asymmetric digital signature algorithm ... It MUST NOT
 * be none or an identifier for a symmetric algorithm". These are the ones accepted, published as
 * `dpop_signing_alg_values_supported` and in `algs` challenges. `Ed25519` is RFC 9864's fully-specified
 * name for what `EdDSA` means with an Ed25519 key; current clients (oauth4webapi) sign with it.
 */
export const DPOP_ALGS = ["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"] as const;

/** RFC 9449 §4.2 `typ`. */
export const DPOP_TYP = "dpop+jwt";

/** JWK members that hold private or symmetric key material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2). */
const SECRET_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/**
 * A compact JWS: three base64url parts (RFC 7515 §7.1); the signature may be empty so that an `alg: none`
 * proof is refused for its algorithm, by name. Also excludes the ", " that joins repeated headers.
 */
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** What the request the proof came with must match. */
export interface ProofExpectations {
  /** The request's HTTP method (`htm`). */
  method: string;
  /**
   * The request's target URI as this server knows itself (`htu`): its configured origin and the request
   * path — never derived from the Host header, which the client controls.
   */
  url: string;
  /** At a protected resource, the access token presented with the proof: its hash must be `ath` (RFC 9449 §7). */
  accessToken?: string;
  /** The current time, seconds since the epoch. */
  now: number;
  /** How many seconds `iat` may lie before or after `now` (RFC 9449 §11.1). */
  window: number;
  /** Accepted `alg` values; default `DPOP_ALGS`. */
  algorithms?: readonly string[];
}

/** A proof that passed every check `checkProof` makes. */
export interface DpopProof {
  /** RFC 7638 SHA-256 thumbprint of the proof's key: what `cnf.jkt` and `dpop_jkt` are compared with (RFC 9449 §6.1). */
  jkt: string;
  jti: string;
  iat: number;
  /** The server-provided nonce the proof carries, if any (RFC 9449 §8); checking it is the caller's job. */
  nonce?: string;
  /**
   * Until when (seconds since the epoch) the proof would still pass the `iat` check, so until when its
   * `jti` must be remembered to refuse a replay (RFC 9449 §11.1).
   */
  replay_until: number;
  /** A fixed-length identifier of this proof for replay stores: base64url SHA-256 of `jkt` and `jti`. */
  replay_id: string;
}

export type ProofResult = { ok: true; proof: DpopProof } | { ok: false; description: string };

/**
 * The DPoP header of a request: absent, one proof, or a failure. RFC 9449 §4.3: "There is not more than
 * one DPoP HTTP request header field" and it "is a single and well-formed JWT". Repeated header fields
 * reach us joined by ", ", which no compact JWS contains.
 */
export function readDpopHeader(headers: Headers): { ok: true; proof: string | undefined } | { ok: false; description: string } {
  const value = headers.get("dpop");
  if (value === null) return { ok: true, proof: undefined };
  if (value.includes(",")) return { ok: false, description: "more than one DPoP header was sent" };
  if (!COMPACT_JWS.test(value)) return { ok: false, description: "the DPoP header is not a compact JWS" };
  return { ok: true, proof: value };
}

/**
 * Checks a DPoP proof against the request it came with (RFC 9449 §4.3, items 2–9, 11 and 12's `ath`):
 * header (`typ`, `alg`, a public `jwk`), signature by that key, `jti`, `htm`, `htu`, `iat` within the
 * window and, at a resource, `ath`. The header checks run before any signature work, so that garbage
 * costs nothing. Descriptions are wire-safe.
 */
export async function checkProof(jws: string, expect: ProofExpectations): Promise<ProofResult> {
  const fail = (description: string): ProofResult => ({ ok: false, description });
  const algorithms = [...(expect.algorithms ?? DPOP_ALGS)];
  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(jws);
  } catch {
    return fail("the DPoP header is not a compact JWS");
  }
  // RFC 9449 §11.5: servers "MUST verify that the typ field is dpop+jwt".
  if (header.typ !== DPOP_TYP) return fail(`the DPoP proof must have typ ${DPOP_TYP}`);
  // RFC 9449 §11.6: "only asymmetric digital signature algorithms ... In particular, the algorithm none MUST NOT be allowed."
  if (typeof header.alg !== "string" || !algorithms.includes(header.alg)) return fail(`the DPoP proof must be signed with one of ${algorithms.join(" ")}`);
  const jwk = header.jwk as JWK | undefined;
  if (typeof jwk !== "object" || jwk === null || Array.isArray(jwk)) return fail("the DPoP proof must carry its public key as jwk");
  // RFC 9449 §4.2: the jwk "MUST NOT contain a private key".
  if (SECRET_MEMBERS.some((m) => m in jwk)) return fail("the DPoP proof's jwk must be a public key");

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(jws, EmbeddedJWK, { typ: DPOP_TYP, algorithms, currentDate: new Date(expect.now * 1000) }));
  } catch (error) {
    return fail(describe(error));
  }
  // RFC 9449 §4.3 item 3: "All required claims per Section 4.2 are contained in the JWT."
  const parsed = parseDpopProofClaims(payload);
  if (!parsed.ok) return fail(parsed.description);
  const { jti, htm, htu, iat, ath, nonce } = parsed.claims;
  if (htm !== expect.method) return fail("the DPoP proof's htm does not match the request method");
  if (!sameTarget(htu, expect.url)) return fail("the DPoP proof's htu does not match the request URI");
  // RFC 9449 §11.1: "servers MUST only accept DPoP proofs for a limited time after their creation".
  if (iat < expect.now - expect.window) return fail("the DPoP proof was issued too long ago");
  if (iat > expect.now + expect.window) return fail("the DPoP proof was issued in the future");
  if (expect.accessToken !== undefined) {
    // RFC 9449 §7: "The DPoP proof MUST include the ath claim with a valid hash of the associated access token."
    if (ath === undefined) return fail("the DPoP proof must carry ath, the hash of the access token");
    if (ath !== (await sha256(expect.accessToken))) return fail("the DPoP proof's ath does not match the access token");
  }
  let jkt: string;
  try {
    jkt = await calculateJwkThumbprint(jwk, "sha256");
  } catch {
    return fail("the DPoP proof's jwk is invalid");
  }
  return {
    ok: true,
    proof: {
      jkt,
      jti,
      iat,
      ...(nonce !== undefined ? { nonce } : {}),
      replay_until: Math.floor(iat) + expect.window + 1,
      replay_id: await sha256(`${jkt}.${jti}`),
    },
  };
}

/**
 * RFC 9449 §4.3 item 9: `htu` "matches the HTTP URI value for the HTTP request ... ignoring any query and
 * fragment parts", after syntax- and scheme-based normalization (RFC 3986 §6.2.2–6.2.3), which the URL
 * parser does: case of scheme and host, default port, dot segments, percent-encoding.
 */
function sameTarget(htu: string, expected: string): boolean {
  const normalize = (s: string) => {
    const u = new URL(s);
    u.search = "";
    u.hash = "";
    return u.href;
  };
  try {
    return normalize(htu) === normalize(expected);
  } catch {
    return false;
  }
}

/**
 * base64url(SHA-256(ASCII(input))), as `ath` and the replay id use it. Here rather than from
 * `workers/crypto.ts`, which uses Workers-only WebCrypto extensions, so that the kit runs anywhere.
 */
async function sha256(input: string): Promise<string> {
  return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(input))));
}

/** A short, wire-safe reason for a proof jose refused. */
function describe(error: unknown): string {
  if (error instanceof errors.JWSSignatureVerificationFailed) return "the DPoP proof signature is invalid";
  if (error instanceof errors.JOSEAlgNotAllowed) return "the DPoP proof is signed with a disallowed algorithm";
  if (error instanceof errors.JOSENotSupported) return "the DPoP proof's key type or algorithm is not supported";
  if (error instanceof errors.JWTExpired) return "the DPoP proof has expired";
  if (error instanceof errors.JWTClaimValidationFailed) return `the DPoP proof's ${error.claim} is invalid`;
  if (error instanceof errors.JWSInvalid && /jwk/i.test(error.message)) return "the DPoP proof's jwk is invalid";
  return "the DPoP proof is malformed";
}
