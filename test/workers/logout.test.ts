import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setClock } from "../../workers/clock";
import { authorizeUrl, Browser, hidden, obtainCode, pkce, signIn } from "./browser";
import { type CreatedClient, call, createClient, expectError, ISSUER, postForm } from "./helpers";

/**
 * OpenID Connect RP-Initiated Logout 1.0 at `/logout`: the client is named by the hint's audience or
 * `client_id`, the browser returns only to a registered `post_logout_redirect_uri` with `state`, and the user
 * is asked first unless the hint is an ID token for the user signed in here.
 */
const REDIRECT = "https://rp.example/cb";
const AFTER = "https://rp.example/logged-out";
let rp: CreatedClient;

afterEach(() => setClock());

beforeAll(async () => {
  rp = await createClient({
    client_name: "Relying Party",
    redirect_uris: [REDIRECT],
    post_logout_redirect_uris: [AFTER],
    token_endpoint_auth_method: "none",
  });
});

/** Alice's browser, signed in, and an ID token issued to `rp` for her. */
/** An OpenID authorization request of `rp` with the PKCE challenge `challenge`. */
const request = (challenge: string) => ({
  response_type: "code",
  client_id: rp.client_id,
  redirect_uri: REDIRECT,
  code_challenge: challenge,
  code_challenge_method: "S256",
  scope: "openid",
});

async function aliceWithIdToken(): Promise<{ browser: Browser; idToken: string }> {
  const p = await pkce();
  const { code, browser } = await obtainCode(request(p.challenge), REDIRECT);
  const res = await postForm("/token", { grant_type: "authorization_code", code, code_verifier: p.verifier, client_id: rp.client_id, redirect_uri: REDIRECT });
  return { browser, idToken: ((await res.json()) as { id_token: string }).id_token };
}

/** Whether the browser is still signed in: /authorize with a remembered consent answers with a code, not the sign-in page. */
async function signedIn(browser: Browser): Promise<boolean> {
  const res = await browser.get(authorizeUrl(request((await pkce()).challenge)));
  return res.status === 303;
}

const logoutUrl = (params: Record<string, string>) => `/logout?${new URLSearchParams(params)}`;

describe("RP-initiated logout", () => {
  it("is advertised as end_session_endpoint, and the client registers post_logout_redirect_uris", async () => {
    const m = (await (await call("/.well-known/openid-configuration")).json()) as Record<string, unknown>;
    expect(m.end_session_endpoint).toBe(`${ISSUER}/logout`);
    expect(rp.post_logout_redirect_uris).toEqual([AFTER]);
  });

  it("signs out at once for an ID token of the user signed in here, and returns to the registered URI with state", async () => {
    const { browser, idToken } = await aliceWithIdToken();
    expect(await signedIn(browser)).toBe(true);
    const res = await browser.get(logoutUrl({ id_token_hint: idToken, post_logout_redirect_uri: AFTER, state: "s-1" }));
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`${AFTER}?state=s-1`);
    expect(await signedIn(browser)).toBe(false);
  });

  it("asks first without a hint for this user; Sign out ends the session and returns, Stay keeps it", async () => {
    const { browser } = await aliceWithIdToken();
    const page = await browser.get(logoutUrl({ client_id: rp.client_id, post_logout_redirect_uri: AFTER, state: "s-2" }));
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain("<strong>Relying Party</strong> asks to sign you out of this server.");
    expect(page.headers.get("content-security-policy")).toContain("form-action 'self' https://rp.example");
    const form = {
      csrf: hidden(html, "csrf"),
      client_id: hidden(html, "client_id"),
      post_logout_redirect_uri: hidden(html, "post_logout_redirect_uri"),
      state: hidden(html, "state"),
      for: hidden(html, "for"),
    };
    expect((await browser.post("/logout/confirm", { ...form, csrf: "x", decision: "sign_out" })).status).toBe(403);
    const stay = await browser.post("/logout/confirm", { ...form, decision: "stay" });
    expect(await stay.text()).toContain("You stayed signed in.");
    expect(await signedIn(browser)).toBe(true);
    const out = await browser.post("/logout/confirm", { ...form, decision: "sign_out" });
    expect(out.headers.get("location")).toBe(`${AFTER}?state=s-2`);
    expect(await signedIn(browser)).toBe(false);
  });

  it("returns only to a registered URI: any other, or one no client is named for, is an error page and signs nobody out", async () => {
    const { browser, idToken } = await aliceWithIdToken();
    for (const [params, description] of [
      [{ id_token_hint: idToken, post_logout_redirect_uri: "https://evil.example/" }, "post_logout_redirect_uri is not registered for this client"],
      [{ post_logout_redirect_uri: AFTER }, "post_logout_redirect_uri needs id_token_hint or client_id to name its client"],
      [{ id_token_hint: idToken, client_id: "lk_other" }, "client_id does not match the audience of the id_token_hint"],
      [{ id_token_hint: "not-a-jwt" }, "id_token_hint is not a JWT"],
    ] as const) {
      const res = await browser.get(logoutUrl(params));
      expect(res.status).toBe(400);
      expect(res.headers.get("location")).toBeNull();
      expect(await res.text()).toContain(description);
    }
    expect(await signedIn(browser)).toBe(true);
  });

  it("with nobody signed in, returns at once; without a URI, shows that the user is signed out", async () => {
    const res = await new Browser().get(logoutUrl({ client_id: rp.client_id, post_logout_redirect_uri: AFTER, state: "s-3" }));
    expect(res.headers.get("location")).toBe(`${AFTER}?state=s-3`);
    const plain = await new Browser().get("/logout");
    expect(plain.status).toBe(200);
    expect(await plain.text()).toContain("You are signed out of this server.");
  });

  it("asks first for an ID token of the same user from another session (another browser or sign-in)", async () => {
    const t = Date.now();
    setClock(() => t - 10_000);
    const { idToken } = await aliceWithIdToken();
    setClock();
    const { browser } = await aliceWithIdToken();
    const res = await browser.get(logoutUrl({ id_token_hint: idToken, post_logout_redirect_uri: AFTER }));
    expect(res.status).toBe(200);
    expect(await res.text()).toContain("asks to sign you out of this server");
    expect(await signedIn(browser)).toBe(true);
  });

  it("answers a POST (cross-site, so without the session cookie) by making the same request again as a GET", async () => {
    const res = await postForm("/logout", { client_id: rp.client_id, post_logout_redirect_uri: AFTER, state: "s-4" });
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`/logout?client_id=${rp.client_id}&post_logout_redirect_uri=${encodeURIComponent(AFTER)}&state=s-4`);
  });

  it("the confirmation answers for the account it was shown to: another signed in meanwhile is asked anew", async () => {
    const { browser } = await aliceWithIdToken();
    const html = await (await browser.get(logoutUrl({ client_id: rp.client_id }))).text();
    await signIn(browser, await browser.get(authorizeUrl({ ...request((await pkce()).challenge), prompt: "login" })), "bob@example.com", "bob-dev-password");
    const answer = await browser.post("/logout/confirm", {
      csrf: hidden(html, "csrf"),
      client_id: rp.client_id,
      for: hidden(html, "for"),
      decision: "sign_out",
    });
    expect(answer.status).toBe(200);
    expect(await answer.text()).toContain("Signed in as bob@example.com");
  });

  it("sends the browser to a self-registered client's URI only with a valid hint: without one, the page names the host", async () => {
    const registered = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.91" },
      body: JSON.stringify({
        redirect_uris: ["https://phish.example/cb"],
        post_logout_redirect_uris: ["https://phish.example/out"],
        token_endpoint_auth_method: "none",
      }),
    });
    const self = (await registered.json()) as { client_id: string };
    const res = await new Browser().get(logoutUrl({ client_id: self.client_id, post_logout_redirect_uri: "https://phish.example/out", state: "x" }));
    expect(res.status).toBe(200);
    expect(res.headers.get("location")).toBeNull();
    expect(await res.text()).toContain('returns to <strong class="host">phish.example</strong>');
    // With an ID token this server issued to it, the client is who it says: back it goes.
    const p = await pkce();
    const params = { ...request(p.challenge), client_id: self.client_id, redirect_uri: "https://phish.example/cb" };
    const { code, browser } = await obtainCode(params, "https://phish.example/cb");
    const tokens = await postForm("/token", {
      grant_type: "authorization_code",
      code,
      code_verifier: p.verifier,
      client_id: self.client_id,
      redirect_uri: "https://phish.example/cb",
    });
    const { id_token } = (await tokens.json()) as { id_token: string };
    const back = await browser.get(logoutUrl({ id_token_hint: id_token, post_logout_redirect_uri: "https://phish.example/out", state: "y" }));
    expect(back.headers.get("location")).toBe("https://phish.example/out?state=y");
  });

  it("refuses a post_logout_redirect_uri that breaks the redirect URI rules at registration", async () => {
    const res = await call("/register", {
      method: "POST",
      headers: { "Content-Type": "application/json", "CF-Connecting-IP": "203.0.113.90" },
      body: JSON.stringify({ redirect_uris: [REDIRECT], post_logout_redirect_uris: ["http://rp.example/out"], token_endpoint_auth_method: "none" }),
    });
    await expectError(
      res,
      400,
      "invalid_client_metadata",
      "post_logout_redirect_uri 'http://rp.example/out' must use https (http is allowed only for loopback)",
    );
  });

  it("answers other methods with 405", async () => {
    const res = await call("/logout", { method: "DELETE" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("GET, POST");
  });
});
