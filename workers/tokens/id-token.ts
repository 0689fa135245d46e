import { decodeProtectedHeader, jwtVerify, SignJWT } from "jose";
import type { SigningAlg } from "../../durable-objects/key-ring";
import type { Config } from "../config";
import { InvalidRequest } from "../errors";
import { atHash } from "./access-token";
import { ownKeys, signingKey } from "./keys";

/**
 * Signs an OIDC Core §2 ID token for `client_id`. RS256 unless the client registered ES256
 * (`id_token_signed_response_alg`). `typ` is `JWT`, distinct from access tokens' `at+jwt`.
 */
export async function mintIdToken(
  env: Env,
  cfg: Config,
  input: {
    sub: string;
    client_id: string;
    alg: SigningAlg;
    auth_time: number;
    amr: string[];
    nonce?: string;
    access_token: string;
    now: number;
    claims?: Record<string, unknown>;
  },
): Promise<string> {
  const { kid, key } = await signingKey(env, input.alg, input.now);
  return new SignJWT({
    // Extra claims first, so they can never replace the ones below (CIBA §10.3.1 push claims).
    ...input.claims,
    auth_time: input.auth_time,
    amr: input.amr,
    at_hash: await atHash(input.access_token),
    ...(input.nonce !== undefined ? { nonce: input.nonce } : {}),
  })
    .setProtectedHeader({ alg: input.alg, typ: "JWT", kid })
    .setIssuer(cfg.ISSUER)
    .setSubject(input.sub)
    .setAudience(input.client_id)
    .setIssuedAt(input.now)
    .setExpirationTime(input.now + cfg.ID_TOKEN_TTL)
    .sign(key);
}

/**
 * The `sub` of an `id_token_hint` (OIDC Core §3.1.2.1, CIBA Core §7.1): an ID token this server issued to
 * `clientId`, checked but for expiry (the hint may be old; the signature, issuer and audience are what count).
 * Throws `invalid_request` for anything else.
 */
export async function idTokenHintSubject(env: Env, cfg: Config, clientId: string, token: string, now: number): Promise<string> {
  return (await readIdTokenHint(env, cfg, clientId, token, now)).sub;
}

/** `idTokenHintSubject`, with the sign-in the ID token was issued for (`auth_time`, which every one of ours carries). */
export async function readIdTokenHint(env: Env, cfg: Config, clientId: string, token: string, now: number): Promise<{ sub: string; auth_time?: number }> {
  let typ: unknown;
  try {
    typ = decodeProtectedHeader(token).typ;
  } catch {
    throw new InvalidRequest("id_token_hint is not a JWT");
  }
  // ID tokens are `typ: JWT`; an access token (`at+jwt`) must not pass for one.
  if (typ !== "JWT") throw new InvalidRequest("id_token_hint is not an ID token issued by this server");
  try {
    const { payload } = await jwtVerify(token, await ownKeys(env, now), {
      issuer: cfg.ISSUER,
      audience: clientId,
      algorithms: ["RS256", "ES256"],
      currentDate: new Date(now * 1000),
      clockTolerance: Number.MAX_SAFE_INTEGER,
      requiredClaims: ["sub", "iat"],
    });
    return { sub: payload.sub as string, ...(typeof payload.auth_time === "number" ? { auth_time: payload.auth_time } : {}) };
  } catch {
    throw new InvalidRequest("id_token_hint is not an ID token issued by this server to this client");
  }
}
