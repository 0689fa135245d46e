import { SignJWT } from "jose";
import type { SigningAlg } from "../../durable-objects/key-ring";
import type { Config } from "../config";
import { atHash } from "./access-token";
import { signingKey } from "./keys";

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
