import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/**
 * Control, the signing floor: one ES256 JWT signed with jose per request, with claims shaped like a
 * Latchkey access token, under a key generated once per isolate. client_credentials cannot be cheaper
 * than this, so it is measured against it.
 */
let key: Promise<{ key: CryptoKey; kid: string }> | undefined;

function signingKey(): Promise<{ key: CryptoKey; kid: string }> {
  key ??= generateKeyPair("ES256").then(async (pair) => {
    const jwk: JWK = await exportJWK(pair.publicKey);
    return { key: pair.privateKey, kid: `${jwk.x?.slice(0, 16)}` };
  });
  return key;
}

export default {
  async fetch(): Promise<Response> {
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
  },
} satisfies ExportedHandler;
