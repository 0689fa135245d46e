// Everything the benchmark must hold before it measures, obtained through the real flows over HTTP:
// clients from the admin API (one of them authenticating with private_key_jwt), a user who signs in and consents once in a cookie jar (as
// test/workers/browser.ts does), then authorization codes at one redirect each, refresh-token chains,
// and the same for the workers-oauth-provider peer through its own API.
import { createHash, randomUUID } from "node:crypto";
import { exportJWK, generateKeyPair, SignJWT } from "jose";

export const MCP_RESOURCE = "http://localhost:8788/mcp";
const REDIRECT_URI = "https://app.example/callback";
const ADMIN_TOKEN = "dev-admin-token";
/** One PKCE pair serves every code: the server cannot tell, and it saves a hash per code. */
const VERIFIER = "bench-verifier-0123456789-0123456789-0123456789";
const CHALLENGE = createHash("sha256").update(VERIFIER).digest("base64url");

export function basic(id, secret) {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString("base64")}`;
}

/** Runs `task(i)` for i < n with at most `width` at a time; returns the results in order. */
async function pooled(n, width, task) {
  const out = new Array(n);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, n) }, async () => {
      while (next < n) {
        const i = next++;
        out[i] = await task(i);
      }
    }),
  );
  return out;
}

function hidden(html, name) {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no hidden ${name} in the page`);
  return m[1].replaceAll("&amp;", "&").replaceAll("&quot;", '"');
}

async function expectStatus(res, status, what) {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${await res.text()}`);
  return res;
}

/** Latchkey: two clients, alice signed in with consent given, and ways to mint codes and tokens. */
export async function latchkeySetup(origin) {
  const http = (path, init = {}) => fetch(new URL(path, origin), { redirect: "manual", ...init });
  const admin = async (body) => {
    const res = await http("/admin/clients", {
      method: "POST",
      headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return (await expectStatus(res, 201, "create client")).json();
  };
  const agent = await admin({ client_name: "bench agent", grant_types: ["client_credentials"], token_endpoint_auth_method: "client_secret_basic" });
  const app = await admin({
    client_name: "bench app",
    redirect_uris: [REDIRECT_URI],
    grant_types: ["authorization_code", "refresh_token"],
    token_endpoint_auth_method: "client_secret_basic",
  });
  const appAuth = basic(app.client_id, app.client_secret);
  // An agent that authenticates with private_key_jwt (RFC 7523, RFC 10070): its key registered as `jwks`.
  const { publicKey, privateKey } = await generateKeyPair("ES256");
  const keyAgent = await admin({
    client_name: "bench agent (private_key_jwt)",
    grant_types: ["client_credentials"],
    token_endpoint_auth_method: "private_key_jwt",
    token_endpoint_auth_signing_alg: "ES256",
    jwks: { keys: [{ ...(await exportJWK(publicKey)), kid: "bench", alg: "ES256", use: "sig" }] },
  });
  /** One client assertion: single-use (its jti), so every request needs its own. */
  const mintAssertion = () => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: "ES256", kid: "bench", typ: "client-authentication+jwt" })
      .setIssuer(keyAgent.client_id)
      .setSubject(keyAgent.client_id)
      .setAudience(origin)
      .setIssuedAt(now)
      .setExpirationTime(now + 240)
      .sign(privateKey);
  };

  // The cookie jar of one browser.
  const jar = new Map();
  const remember = (res) => {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = pair.indexOf("=");
      jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
  const browserGet = async (path) => remember(await http(path, { headers: { Cookie: cookie() } }));
  const browserPost = async (path, fields) =>
    remember(
      await http(path, {
        method: "POST",
        headers: { Cookie: cookie(), "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields),
      }),
    );
  const authorizePath = `/authorize?${new URLSearchParams({
    response_type: "code",
    client_id: app.client_id,
    redirect_uri: REDIRECT_URI,
    code_challenge: CHALLENGE,
    code_challenge_method: "S256",
    resource: MCP_RESOURCE,
    scope: "mcp:read mcp:write",
  })}`;
  const codeOf = (res) => {
    const location = res.headers.get("location") ?? "";
    const code = location.startsWith(REDIRECT_URI) ? new URL(location).searchParams.get("code") : null;
    if (res.status !== 303 || !code) throw new Error(`expected a redirect with a code, got HTTP ${res.status} ${location}`);
    return code;
  };

  // Sign in once and consent once; from then on every GET /authorize is one redirect with a code.
  const login = await expectStatus(await browserGet(authorizePath), 200, "authorize");
  const loginHtml = await login.text();
  const afterLogin = await browserPost("/login", {
    email: "alice@example.com",
    password: "alice-dev-password",
    interaction: hidden(loginHtml, "interaction"),
    csrf: hidden(loginHtml, "csrf"),
  });
  await expectStatus(afterLogin, 303, "sign in");
  const consent = await expectStatus(await browserGet(afterLogin.headers.get("location")), 200, "consent page");
  const consentHtml = await consent.text();
  codeOf(
    await browserPost("/consent", {
      decision: "allow",
      interaction: hidden(consentHtml, "interaction"),
      csrf: hidden(consentHtml, "csrf"),
      for: hidden(consentHtml, "for"),
    }),
  );

  const mintCode = async () => codeOf(await browserGet(authorizePath));
  const redeem = async (code) => {
    const res = await http("/token", {
      method: "POST",
      headers: { Authorization: appAuth, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: VERIFIER, redirect_uri: REDIRECT_URI }),
    });
    return (await expectStatus(res, 200, "redeem code")).json();
  };
  return {
    agent,
    app,
    agentAuth: basic(agent.client_id, agent.client_secret),
    appAuth,
    /** `n` fresh authorization codes, each from its own GET /authorize. */
    mintCodes: (n) => pooled(n, 8, mintCode),
    /** `n` refresh tokens, each the start of its own grant's chain. */
    mintRefreshTokens: (n) => pooled(n, 8, async () => (await redeem(await mintCode())).refresh_token),
    /** A fresh access token of a user's grant (for introspection: the grant is asked whether it stands). */
    mintGrantAccessToken: async () => (await redeem(await mintCode())).access_token,
    /** `n` client_credentials requests, each with a fresh client assertion (minted here, in Node). */
    assertionRequests: async (n) =>
      (await pooled(n, 8, mintAssertion)).map((assertion) => ({
        path: "/token",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "client_credentials",
          client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
          client_assertion: assertion,
          resource: MCP_RESOURCE,
          scope: "mcp:read",
        }).toString(),
      })),
    codeRequest: (code) => ({
      path: "/token",
      headers: { Authorization: appAuth, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: VERIFIER, redirect_uri: REDIRECT_URI }).toString(),
    }),
  };
}

/** The workers-oauth-provider peer: a client, and refresh tokens minted through its own API. */
export async function oauthProviderSetup(origin) {
  const http = (path, init = {}) => fetch(new URL(path, origin), { redirect: "manual", ...init });
  const client = await (await expectStatus(await http("/bench/client", { method: "POST" }), 200, "peer client")).json();
  const auth = basic(client.client_id, client.client_secret);
  const authorizePath = `/authorize?${new URLSearchParams({
    response_type: "code",
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    code_challenge: CHALLENGE,
    code_challenge_method: "S256",
    scope: "mcp:read mcp:write",
    state: "bench",
  })}`;
  const mintRefreshToken = async () => {
    const res = await http(authorizePath);
    const location = res.headers.get("location") ?? "";
    const code = location.startsWith(REDIRECT_URI) ? new URL(location).searchParams.get("code") : null;
    if (!code) throw new Error(`peer authorize: HTTP ${res.status} ${location} ${await res.text()}`);
    const token = await http("/oauth/token", {
      method: "POST",
      headers: { Authorization: auth, "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "authorization_code", code, code_verifier: VERIFIER, redirect_uri: REDIRECT_URI }),
    });
    const body = await (await expectStatus(token, 200, "peer code redemption")).json();
    if (!body.refresh_token) throw new Error(`peer issued no refresh token: ${JSON.stringify(body)}`);
    return body.refresh_token;
  };
  return { auth, mintRefreshTokens: (n) => pooled(n, 8, mintRefreshToken) };
}
