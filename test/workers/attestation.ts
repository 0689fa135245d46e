import { env } from "cloudflare:workers";
import { calculateJwkThumbprint, exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";
import { expect } from "vitest";
import { currentChallenge } from "../../workers/attestation/challenge";
import { now } from "../../workers/clock";
import { adminCall, expectError, ISSUER, postForm } from "./helpers";

/** A Client Attester for tests: signs Client Attestations (draft-ietf-oauth-attestation-based-client-auth-11 §5.1). */
export class TestAttester {
  private constructor(
    readonly issuer: string,
    readonly privateKey: CryptoKey,
    readonly jwk: JWK,
  ) {}

  static async generate(issuer: string): Promise<TestAttester> {
    const { publicKey, privateKey } = await generateKeyPair("ES256");
    return new TestAttester(issuer, privateKey, { ...(await exportJWK(publicKey)), kid: "att-1", alg: "ES256", use: "sig" });
  }

  /** Configures it through the admin API, trusted for `clients`. */
  async register(clients: string[], extra: Record<string, unknown> = {}): Promise<{ id: string }> {
    const res = await adminCall("POST", "/attesters", { issuer: this.issuer, jwks: { keys: [this.jwk] }, clients, ...extra });
    expect(res.status).toBe(201);
    return res.json();
  }

  /** An attestation of `sub` with instance key `instance`, valid unless the options spoil it. */
  attest(sub: string, instance: Instance, o: { claims?: Record<string, unknown>; header?: Record<string, unknown> } = {}): Promise<string> {
    const t = now();
    return new SignJWT({ iss: this.issuer, sub, iat: t, exp: t + 3600, cnf: { jwk: instance.jwk }, ...o.claims })
      .setProtectedHeader({ alg: "ES256", typ: "oauth-client-attestation+jwt", kid: "att-1", ...o.header })
      .sign(this.privateKey);
  }
}

/** A Client Instance: its key pair and the PoPs it signs (§5.2). */
export class Instance {
  private constructor(
    readonly privateKey: CryptoKey,
    readonly jwk: JWK,
    readonly jkt: string,
  ) {}

  static async generate(): Promise<Instance> {
    const { publicKey, privateKey } = await generateKeyPair("ES256", { extractable: true });
    const jwk = await exportJWK(publicKey);
    return new Instance(privateKey, jwk, await calculateJwkThumbprint(jwk, "sha256"));
  }

  /** A PoP for our issuer carrying the current challenge, unless told otherwise (`challenge: null` for none). */
  async pop(o: { claims?: Record<string, unknown>; header?: Record<string, unknown>; challenge?: string | null; signWith?: CryptoKey } = {}): Promise<string> {
    const challenge = o.challenge === undefined ? await serverChallenge() : o.challenge;
    return new SignJWT({ aud: ISSUER, jti: crypto.randomUUID(), iat: now(), ...(challenge !== null ? { challenge } : {}), ...o.claims })
      .setProtectedHeader({ alg: "ES256", typ: "oauth-client-attestation-pop+jwt", ...o.header })
      .sign(o.signWith ?? this.privateKey);
  }
}

/** The challenge the server hands out now. */
export function serverChallenge(): Promise<string> {
  return currentChallenge(env.SESSION_SECRET, now());
}

/** The two request headers of attestation-based client authentication. */
export function attestationHeaders(attestation: string, pop?: string): Record<string, string> {
  return { "OAuth-Client-Attestation": attestation, ...(pop !== undefined ? { "OAuth-Client-Attestation-PoP": pop } : {}) };
}

/**
 * Asserts that `refreshToken` is bound to `instance` (§11): a refresh with an attestation of `other` is refused
 * and changes nothing. Returns the refresh with `instance`'s attestation, which should then succeed.
 */
export async function refreshBoundTo(
  refreshToken: string,
  as: (i: Instance) => Promise<Record<string, string>>,
  instance: Instance,
  other: Instance,
): Promise<Response> {
  const refresh = { grant_type: "refresh_token", refresh_token: refreshToken };
  await expectError(
    await postForm("/token", refresh, await as(other)),
    400,
    "invalid_grant",
    "the refresh token is bound to the client instance key of the attestation it was issued under",
  );
  return postForm("/token", refresh, await as(instance));
}
