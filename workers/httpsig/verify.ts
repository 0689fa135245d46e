import { importJWK, type JWK } from "jose";
import { isInnerList, ParseError, parseDictionary } from "structured-headers";
import { param, type Read, resolver, type SignatureEntry, signatureBase, signaturesTagged } from "./fields";

/**
 * Verification of an HTTP message signature (RFC 9421 §3.2) under the profile of
 * draft-richer-oauth-httpsig-03: a tag, required covered components, `created` within a window,
 * a single-use `nonce`, a `keyid`, no `alg` (the algorithm comes from the key, RFC 9421 §3.3.7), and the
 * body's `Content-Digest` (RFC 9530) checked whenever it is covered. Pure: no storage, no clock, no
 * environment; the caller supplies key lookup and nonce claiming.
 */

/** WebCrypto's sign/verify algorithm parameter, named portably (the kit also compiles without the Workers runtime types). */
type SignAlgorithm = Parameters<typeof crypto.subtle.verify>[0];

/** JWS algorithms (RFC 7518, RFC 8037) accepted for signatures, with their WebCrypto verify parameters. */
export const WEBCRYPTO: Record<string, SignAlgorithm> = {
  ES256: { name: "ECDSA", hash: "SHA-256" },
  ES384: { name: "ECDSA", hash: "SHA-384" },
  EdDSA: { name: "Ed25519" },
  Ed25519: { name: "Ed25519" },
  RS256: { name: "RSASSA-PKCS1-v1_5" },
  PS256: { name: "RSA-PSS", saltLength: 32 },
};
export const HTTPSIG_ALGS = Object.keys(WEBCRYPTO);

/** Clamp for `nonce` length: it becomes a replay-store key. */
const MAX_NONCE = 256;

export interface SignaturePolicy {
  /** The `tag` this use requires (draft §3.3: `httpsig-oauth-token-request`; §5: `httpsig-oauth`). */
  tag: string;
  /** Components the signature must cover. */
  required: readonly string[];
  /** The target URI as the verifier knows it: its configured origin plus the request's path and query. */
  targetUri: URL;
  /** Seconds since the epoch. */
  now: number;
  /** How far `created` may lie from `now`, either way, in seconds. */
  windowSeconds: number;
  /** More than one signature with the tag is an error (the draft, at the token endpoint); otherwise all are verified. */
  single: boolean;
  /** The request body's bytes, for `content-digest`. */
  body: () => Promise<Uint8Array>;
  /** The public key named by `keyid`, or a wire-safe reason it cannot be used. */
  keyFor: (keyid: string) => Promise<Read<JWK>>;
  /** Records `nonce` as used until `until`; false if it was used before. */
  claimNonce: (nonce: string, until: number) => Promise<boolean>;
}

export interface VerifiedSignature {
  /** The key that verified it. */
  jwk: JWK;
  keyid: string;
  /** The JWS algorithm it was verified with. */
  alg: string;
}

/**
 * The target URI as the verifier knows it: its configured `origin` and the path and query the request was
 * received with, exactly (RFC 9421 §2.2.2: an empty query's `?` is part of it), never the Host header's.
 */
export function targetOnOrigin(origin: string, received: URL): URL {
  return new URL(`${origin}${received.href.slice(received.origin.length)}`);
}

/** Verifies the request's signatures tagged `policy.tag`; returns the last one's key, or why it failed. */
export async function verifyRequestSignature(request: { method: string; headers: Headers }, policy: SignaturePolicy): Promise<Read<VerifiedSignature>> {
  const read = signaturesTagged(request.headers, policy.tag);
  if (!read.ok) return read;
  // draft §4: the request fails if "There is more than one signature with the tag".
  if (policy.single && read.value.length > 1) return { ok: false, description: `more than one signature is tagged ${policy.tag}` };
  let verified: Read<VerifiedSignature> = { ok: false, description: "no signature" };
  const pending: { nonce: string; until: number }[] = [];
  for (const entry of read.value) {
    const checked = await verifyOne(request, entry, policy);
    if (!checked.ok) return checked;
    verified = { ok: true, value: checked.value.verified };
    pending.push(checked.value.claim);
  }
  // Nonces are claimed last, once every check passed, so a forged signature cannot burn a real one's nonce.
  for (const { nonce, until } of pending) {
    // draft §4: the request fails if "The nonce value is used more than once within the validity window".
    if (!(await policy.claimNonce(nonce, until))) return { ok: false, description: "the signature's nonce was already used" };
  }
  return verified;
}

async function verifyOne(
  request: { method: string; headers: Headers },
  entry: SignatureEntry,
  policy: SignaturePolicy,
): Promise<Read<{ verified: VerifiedSignature; claim: { nonce: string; until: number } }>> {
  const fail = (description: string) => ({ ok: false as const, description });
  for (const component of policy.required) {
    if (!entry.components.includes(component)) return fail(`the signature must cover ${component}`);
  }
  const { params } = entry;
  // draft §3.3: "The alg signature parameter MUST NOT be used."
  if (params.has("alg")) return fail("the signature must not carry an alg parameter; the algorithm comes from the key");
  const created = param(params, "created", "number");
  const nonce = param(params, "nonce", "string");
  const keyid = param(params, "keyid", "string");
  const expires = params.has("expires") ? param(params, "expires", "number") : null;
  if (created === undefined || !Number.isInteger(created)) return fail("the signature must carry created, an integer");
  if (nonce === undefined || nonce.length === 0 || nonce.length > MAX_NONCE)
    return fail(`the signature must carry nonce, a string of 1 to ${MAX_NONCE} characters`);
  if (keyid === undefined) return fail("the signature must carry keyid, a string");
  if (expires === undefined || (expires !== null && !Number.isInteger(expires))) return fail("the signature's expires must be an integer");
  // draft §3.3: created "MUST be within a small number of seconds of issuance".
  if (Math.abs(policy.now - created) > policy.windowSeconds) {
    return fail(`the signature's created time is outside the allowed window of ${policy.windowSeconds} seconds`);
  }
  // RFC 9421 §3.2.1: a verifier rejects a signature whose expires time has passed.
  if (expires !== null && expires <= policy.now) return fail("the signature has expired");
  const key = await policy.keyFor(keyid);
  if (!key.ok) return key;
  const alg = algorithmOf(key.value);
  if (!alg) return fail(`the key ${keyid} must name an alg among ${HTTPSIG_ALGS.join(", ")}`);
  if (entry.components.includes("content-digest")) {
    const digest = await checkContentDigest(request.headers, await policy.body());
    if (!digest.ok) return digest;
  }
  const base = signatureBase(entry, resolver(request.method, policy.targetUri, request.headers));
  if (!base.ok) return base;
  if (!(await verifyBytes(key.value, alg, entry.signature, base.value))) return fail(`the signature does not verify with the key ${keyid}`);
  const until = Math.min(policy.now, created) + 2 * policy.windowSeconds;
  return { ok: true, value: { verified: { jwk: key.value, keyid, alg }, claim: { nonce, until } } };
}

/**
 * The JWS algorithm of a key: its `alg` (the draft: the key "MUST indicate a signing algorithm in its alg
 * field"), or the only one an EC or OKP curve allows.
 */
export function algorithmOf(jwk: JWK): string | undefined {
  const alg =
    jwk.alg ?? (jwk.kty === "EC" ? { "P-256": "ES256", "P-384": "ES384" }[jwk.crv ?? ""] : jwk.kty === "OKP" && jwk.crv === "Ed25519" ? "EdDSA" : undefined);
  return alg && alg in WEBCRYPTO ? alg : undefined;
}

/**
 * RFC 9421 §3.3.7: with a JWS algorithm the signature base is the signing input and the signature is
 * the raw JWS signature bytes (for ECDSA, r||s — what WebCrypto produces). jose imports the JWK.
 */
async function verifyBytes(jwk: JWK, alg: string, signature: Uint8Array, base: string): Promise<boolean> {
  try {
    const key = await importJWK({ ...jwk, ext: true }, alg);
    if (key instanceof Uint8Array) return false;
    // RFC 7518 §3.3: RSA keys of 2048 bits or more (jose checks this for JWS; this path verifies without it).
    if ("modulusLength" in key.algorithm && (key.algorithm as { modulusLength: number }).modulusLength < 2048) return false;
    return await crypto.subtle.verify(WEBCRYPTO[alg] as SignAlgorithm, key, signature, new TextEncoder().encode(base));
  } catch {
    return false;
  }
}

/** RFC 9530 hash algorithms accepted in `Content-Digest` (the registry's "Active" ones). */
const DIGESTS: Record<string, string> = { "sha-256": "SHA-256", "sha-512": "SHA-512" };

/**
 * RFC 9530 §2: `Content-Digest` is a Dictionary from algorithm to the Byte Sequence digest of the content.
 * Every member with an algorithm we know must match the body; at least one must be known.
 */
export async function checkContentDigest(headers: Headers, body: Uint8Array): Promise<Read<true>> {
  const field = headers.get("content-digest");
  if (field === null) return { ok: false, description: "the Content-Digest field is missing" };
  let dict: ReturnType<typeof parseDictionary>;
  try {
    dict = parseDictionary(field);
  } catch (error) {
    if (error instanceof ParseError) return { ok: false, description: "Content-Digest is not a valid structured field dictionary (RFC 9530)" };
    throw error;
  }
  let known = 0;
  for (const [name, member] of dict) {
    const hash = DIGESTS[name];
    if (!hash) continue;
    if (isInnerList(member) || !(member[0] instanceof ArrayBuffer)) return { ok: false, description: `Content-Digest ${name} must be a byte sequence` };
    const actual = new Uint8Array(await crypto.subtle.digest(hash, body));
    if (!equalBytes(actual, new Uint8Array(member[0]))) return { ok: false, description: `Content-Digest ${name} does not match the request body` };
    known++;
  }
  if (!known) return { ok: false, description: "Content-Digest must use sha-256 or sha-512" };
  return { ok: true, value: true };
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}
