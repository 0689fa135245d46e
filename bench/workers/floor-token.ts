import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/**
 * What the signing floor signs per request (bench/workers/sign-floor.ts), and the issuance floor too
 * (bench/workers/grant-floor.ts at `/issue`): one ES256 JWT with jose, with claims shaped like a
 * Latchkey access token, under a key generated once per isolate.
 */
let key: Promise<{ key: CryptoKey; kid: string }> | undefined;

function signingKey(): Promise<{ key: CryptoKey; kid: string }> {
  key ??= generateKeyPair("ES256").then(async (pair) => {
    const jwk: JWK = await exportJWK(pair.publicKey);
    return { key: pair.privateKey, kid: `${jwk.x?.slice(0, 16)}` };
  });
  return key;
}

/** A token response with one freshly signed access token. */
export async function floorToken(): Promise<Response> {
  const { key: k, kid } = await signingKey();
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    iss: "http://127.0.0.1",
    sub: "lk_floor_client",
    aud: "http://localhost:8788/mcp",
    client_id: "lk_floor_client",
    iat: now,
    exp: now + 600,
    jti: crypto.randomUUID(),
    scope: "mcp:read",
  })
    .setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid })
    .sign(k);
  return Response.json({ access_token: token, token_type: "Bearer", expires_in: 600 }, { headers: { "Cache-Control": "no-store" } });
}
