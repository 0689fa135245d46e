import { exportJWK, generateKeyPair, type JWK } from "jose";
import { type SignRequestOptions, signRequest } from "../../workers/httpsig/sign";
import { call, ISSUER, type Send } from "./helpers";

/** A test agent's signing key: the private half and the public JWK it registers. */
export interface SigningKey {
  privateKey: CryptoKey;
  jwk: JWK;
  alg: string;
  kid: string;
}

/** A fresh key pair for `alg`, its public JWK carrying `kid` and `alg` (the draft requires both). */
export async function signingKey(alg = "ES256", kid = "k1"): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true, ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}) });
  return { privateKey: pair.privateKey, jwk: { ...(await exportJWK(pair.publicKey)), kid, alg }, alg, kid };
}

export type SignOverrides = Partial<Omit<SignRequestOptions, "privateKey">> & { privateKey?: CryptoKey };

/**
 * POSTs a form to the Worker signed with `key` under the token request tag; `url` is what is signed
 * (default the ISSUER's URL of `path`), `sendUrl` what the request is sent to, `sendBody` a body other
 * than the one signed (tampering tests),
 * `after` headers set once the request is signed.
 */
export async function signedPost(
  path: string,
  params: Record<string, string>,
  key: SigningKey,
  o: SignOverrides & { url?: string; sendUrl?: string; sendBody?: string; headers?: Record<string, string>; after?: Record<string, string>; send?: Send } = {},
): Promise<Response> {
  const body = new URLSearchParams(params).toString();
  const { url, sendUrl, sendBody, headers: extra, after, send, ...overrides } = o;
  const headers = await signRequest(
    { method: "POST", url: url ?? `${ISSUER}${path}`, headers: { "content-type": "application/x-www-form-urlencoded", ...extra }, body },
    { privateKey: key.privateKey, alg: key.alg, keyid: key.kid, tag: "httpsig-oauth-token-request", ...overrides },
  );
  for (const [name, value] of Object.entries(after ?? {})) headers.set(name, value);
  const init = { method: "POST", headers, body: sendBody ?? body };
  if (sendUrl) return call(sendUrl, init);
  return (send ?? call)(path, init);
}
