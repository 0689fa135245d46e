import { beforeAll, describe, expect, it } from "vitest";
import { obtainCode, pkce } from "./browser";
import { DpopKey, serverNonce } from "./dpop";
import { basic, type CreatedClient, call, createClient, expectError, ISSUER, postForm } from "./helpers";

/**
 * UserInfo as a DPoP-protected resource (RFC 9449 §7): a DPoP-bound token only with the DPoP scheme
 * and a proof by its key carrying `ath`; never as Bearer; challenges in the scheme the client used.
 */
const REDIRECT = "https://app.example/callback";
const ALGS = 'algs="ES256 ES384 EdDSA Ed25519 RS256 PS256"';
const USERINFO = `${ISSUER}/userinfo`;
let app: CreatedClient;
let key: DpopKey;

beforeAll(async () => {
  app = await createClient({ redirect_uris: [REDIRECT], grant_types: ["authorization_code"], token_endpoint_auth_method: "client_secret_basic" });
  key = await DpopKey.generate();
});

/** An access token for userinfo (`openid profile`), DPoP-bound to `dpop` when given. */
async function accessToken(dpop?: DpopKey): Promise<string> {
  const p = await pkce();
  const { code } = await obtainCode(
    {
      response_type: "code",
      client_id: app.client_id,
      redirect_uri: REDIRECT,
      code_challenge: p.challenge,
      code_challenge_method: "S256",
      scope: "openid profile",
    },
    REDIRECT,
  );
  const res = await postForm(
    "/token",
    { grant_type: "authorization_code", code, code_verifier: p.verifier },
    { Authorization: basic(app.client_id, app.client_secret as string), ...(dpop ? { DPoP: await dpop.proof() } : {}) },
  );
  const body = (await res.json()) as { access_token: string; token_type: string };
  expect(body.token_type).toBe(dpop ? "DPoP" : "Bearer");
  return body.access_token;
}

function userinfo(authorization: string, proof?: string, method = "GET"): Promise<Response> {
  return call("/userinfo", { method, headers: { Authorization: authorization, ...(proof ? { DPoP: proof } : {}) } });
}

/** A 401 with exactly this challenge and body, and the next nonce beside it. */
async function expectChallenge(res: Response, error: string, description: string, wwwAuthenticate: string): Promise<void> {
  expect(res.headers.get("www-authenticate")).toBe(wwwAuthenticate);
  expect(res.headers.get("cache-control")).toBe("no-store");
  await expectError(res, 401, error, description);
}

const dpopChallenge = (error: string, description: string) => `DPoP error="${error}", error_description="${description}", ${ALGS}`;

describe("userinfo with DPoP-bound tokens (RFC 9449 §7.1)", () => {
  let token: string;
  beforeAll(async () => {
    token = await accessToken(key);
  });

  it("answers Authorization: DPoP with a valid proof, and hands out the next nonce", async () => {
    const res = await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: token }));
    expect(res.status).toBe(200);
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    expect(await res.json()).toEqual({ sub: "usr_dev_alice", name: "Alice Example" });
    const post = await userinfo(`DPoP ${token}`, await key.proof({ htm: "POST", htu: USERINFO, accessToken: token }), "POST");
    expect(await post.json()).toEqual({ sub: "usr_dev_alice", name: "Alice Example" });
  });

  it("refuses the DPoP-bound token as Bearer (§7.2), in the header or the form body, pointing at DPoP", async () => {
    const description = "the access token is DPoP-bound; send it with the DPoP scheme and a DPoP proof";
    const challenge = `Bearer error="invalid_token", error_description="${description}", DPoP ${ALGS}`;
    await expectChallenge(await userinfo(`Bearer ${token}`), "invalid_token", description, challenge);
    // Not even with a valid proof beside it: the scheme says Bearer.
    await expectChallenge(
      await userinfo(`Bearer ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: token })),
      "invalid_token",
      description,
      challenge,
    );
    await expectChallenge(await postForm("/userinfo", { access_token: token }), "invalid_token", description, challenge);
  });

  it("refuses the DPoP scheme without a proof, and with two", async () => {
    const missing = "a DPoP proof is required with a DPoP-bound access token";
    await expectChallenge(await userinfo(`DPoP ${token}`), "invalid_dpop_proof", missing, dpopChallenge("invalid_dpop_proof", missing));
    const proof = await key.proof({ htm: "GET", htu: USERINFO, accessToken: token });
    const res = await call("/userinfo", {
      headers: new Headers([
        ["Authorization", `DPoP ${token}`],
        ["DPoP", proof],
        ["DPoP", proof],
      ]),
    });
    const two = "more than one DPoP header was sent";
    await expectChallenge(res, "invalid_dpop_proof", two, dpopChallenge("invalid_dpop_proof", two));
  });

  it("refuses a proof without ath, or with the hash of another token", async () => {
    const noAth = "the DPoP proof must carry ath, the hash of the access token";
    const res = await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO }));
    expect(res.headers.get("dpop-nonce")).toBe(await serverNonce());
    await expectChallenge(res, "invalid_dpop_proof", noAth, dpopChallenge("invalid_dpop_proof", noAth));
    const wrong = "the DPoP proof's ath does not match the access token";
    await expectChallenge(
      await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: "another-token" })),
      "invalid_dpop_proof",
      wrong,
      dpopChallenge("invalid_dpop_proof", wrong),
    );
  });

  it("refuses a proof by another key than the token's cnf.jkt with invalid_token (§6)", async () => {
    const other = await DpopKey.generate();
    const description = "the DPoP proof is not signed by the key the access token is bound to";
    await expectChallenge(
      await userinfo(`DPoP ${token}`, await other.proof({ htm: "GET", htu: USERINFO, accessToken: token })),
      "invalid_token",
      description,
      dpopChallenge("invalid_token", description),
    );
  });

  it("refuses a proof made for the token endpoint or another method (htu, htm)", async () => {
    const htu = "the DPoP proof's htu does not match the request URI";
    await expectChallenge(
      await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", accessToken: token })),
      "invalid_dpop_proof",
      htu,
      dpopChallenge("invalid_dpop_proof", htu),
    );
    const htm = "the DPoP proof's htm does not match the request method";
    await expectChallenge(
      await userinfo(`DPoP ${token}`, await key.proof({ htm: "POST", htu: USERINFO, accessToken: token })),
      "invalid_dpop_proof",
      htm,
      dpopChallenge("invalid_dpop_proof", htm),
    );
  });

  it("answers a proof without a nonce with 401 use_dpop_nonce and a DPoP-Nonce (§9)", async () => {
    const description = "the authorization server requires a nonce in the DPoP proof";
    const res = await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: token, nonce: null }));
    const nonce = res.headers.get("dpop-nonce") as string;
    expect(nonce).toBe(await serverNonce());
    await expectChallenge(res, "use_dpop_nonce", description, dpopChallenge("use_dpop_nonce", description));
    expect((await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: token, nonce }))).status).toBe(200);
  });

  it("refuses a replayed proof", async () => {
    const proof = await key.proof({ htm: "GET", htu: USERINFO, accessToken: token });
    expect((await userinfo(`DPoP ${token}`, proof)).status).toBe(200);
    const description = "the DPoP proof was already used";
    await expectChallenge(await userinfo(`DPoP ${token}`, proof), "invalid_dpop_proof", description, dpopChallenge("invalid_dpop_proof", description));
  });

  it("refuses a proof that is too old", async () => {
    const description = "the DPoP proof was issued too long ago";
    const old = await key.proof({ htm: "GET", htu: USERINFO, accessToken: token, iat: Math.floor(Date.now() / 1000) - 120 });
    await expectChallenge(await userinfo(`DPoP ${token}`, old), "invalid_dpop_proof", description, dpopChallenge("invalid_dpop_proof", description));
  });
});

describe("userinfo with Bearer tokens alongside DPoP", () => {
  it("refuses a Bearer token sent with the DPoP scheme", async () => {
    const token = await accessToken();
    const description = "the access token is not DPoP-bound; send it with the Bearer scheme";
    await expectChallenge(
      await userinfo(`DPoP ${token}`, await key.proof({ htm: "GET", htu: USERINFO, accessToken: token })),
      "invalid_token",
      description,
      dpopChallenge("invalid_token", description),
    );
    expect((await userinfo(`Bearer ${token}`)).status).toBe(200);
  });

  it("answers an invalid token in the scheme the client used", async () => {
    const description = "the access token is invalid, expired or revoked";
    await expectChallenge(await userinfo("DPoP garbage"), "invalid_token", description, dpopChallenge("invalid_token", description));
    await expectChallenge(await userinfo("Bearer garbage"), "invalid_token", description, `Bearer error="invalid_token", error_description="${description}"`);
  });

  it("answers another authorization scheme like no token: 401, a bare challenge (RFC 6750 §3.1)", async () => {
    const res = await userinfo("Basic Zm9vOmJhcg==");
    expect(res.headers.get("www-authenticate")).toBe(`Bearer realm="${ISSUER}", DPoP realm="${ISSUER}", ${ALGS}`);
    await expectError(res, 401, "invalid_token", "an access token is required");
  });
});
