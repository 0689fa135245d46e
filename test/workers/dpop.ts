import { env } from "cloudflare:workers";
import { base64url, calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { now } from "../../workers/clock";
import { sha256 } from "../../workers/crypto";
import { currentNonce } from "../../workers/dpop/nonce";
import { ISSUER } from "./helpers";

/** What a test may set on a proof; anything left out is what a correct client would send. */
export interface ProofOptions {
  htm?: string;
  htu?: string;
  /** The access token the proof accompanies: sets `ath`. */
  accessToken?: string;
  /** The nonce to carry; `null` for none. Default: the server's current nonce. */
  nonce?: string | null;
  iat?: number;
  jti?: string;
  /** Extra or replaced JOSE header members (`typ`, `jwk`, ...). */
  header?: Record<string, unknown>;
  /** Extra or replaced claims. */
  claims?: Record<string, unknown>;
}

/** A client's DPoP key pair and the proofs it signs (RFC 9449 §4.2). */
export class DpopKey {
  private constructor(
    readonly alg: string,
    readonly privateKey: CryptoKey,
    readonly jwk: JWK,
    readonly privateJwk: JWK,
    /** RFC 7638 SHA-256 thumbprint: what `cnf.jkt` and `dpop_jkt` carry. */
    readonly jkt: string,
  ) {}

  static async generate(alg = "ES256"): Promise<DpopKey> {
    const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = await exportJWK(publicKey);
    return new DpopKey(alg, privateKey, jwk, await exportJWK(privateKey), await calculateJwkThumbprint(jwk, "sha256"));
  }

  /** A signed proof for `POST ${ISSUER}/token` unless told otherwise. */
  async proof(o: ProofOptions = {}): Promise<string> {
    const nonce = o.nonce === undefined ? await serverNonce() : o.nonce;
    return new SignJWT({
      jti: o.jti ?? crypto.randomUUID(),
      htm: o.htm ?? "POST",
      htu: o.htu ?? `${ISSUER}/token`,
      iat: o.iat ?? now(),
      ...(nonce !== null ? { nonce } : {}),
      ...(o.accessToken !== undefined ? { ath: await sha256(o.accessToken) } : {}),
      ...o.claims,
    })
      .setProtectedHeader({ alg: this.alg, typ: "dpop+jwt", jwk: this.jwk, ...o.header })
      .sign(this.privateKey);
  }
}

/** The nonce the server hands out now (what a `DPoP-Nonce` header would carry). */
export function serverNonce(): Promise<string> {
  return currentNonce(env.SESSION_SECRET, now());
}

/** An unsigned JWS (`alg: none`) with the given header and claims. */
export function unsigned(header: Record<string, unknown>, claims: Record<string, unknown>): string {
  const part = (o: unknown) => base64url.encode(JSON.stringify(o));
  return `${part(header)}.${part(claims)}.`;
}
