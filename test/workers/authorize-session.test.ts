import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { setClock } from "../../workers/clock";
import { authorizeUrl, Browser, clientRedirect, decide, follow, hidden, obtainCode, pkce, signIn } from "./browser";
import { adminCall, type CreatedClient, call, createClient, ISSUER, MCP_RESOURCE } from "./helpers";

/**
 * The browser session at the authorization endpoint: whose it is (a deleted user's cookie is no session),
 * and when a sign-in satisfies `prompt=login` and `max_age` (OIDC Core §3.1.2.1) — at every step, the
 * consent form included.
 */

const REDIRECT = "https://app.example/callback";
let app: CreatedClient;
let challenge: string;

beforeAll(async () => {
  app = await createClient({ client_name: "Session App", redirect_uris: [REDIRECT], token_endpoint_auth_method: "none" });
  challenge = (await pkce()).challenge;
});

afterEach(() => setClock());

const base = () => ({
  response_type: "code",
  client_id: app.client_id,
  redirect_uri: REDIRECT,
  code_challenge: challenge,
  code_challenge_method: "S256",
  state: "s-1",
  resource: MCP_RESOURCE,
  scope: "mcp:read",
});

/** A new user through the admin API, and how to sign in as them. */
async function createUser(name: string): Promise<{ id: string; email: string; password: string }> {
  const email = `${name}@example.com`;
  const password = `${name}-password-1234`;
  const res = await adminCall("POST", "/users", { email, password, name });
  expect(res.status).toBe(201);
  return { id: ((await res.json()) as { id: string }).id, email, password };
}

/** Whether `res` is the sign-in page (200, no redirect). */
async function expectSignInPage(res: Response): Promise<void> {
  expect(res.status).toBe(200);
  expect(res.headers.get("location")).toBeNull();
  expect(await res.clone().text()).toContain('action="/login"');
}

/** The `Set-Cookie` line that ends the session cookie, if any. */
function sessionCleared(res: Response): boolean {
  return res.headers.getSetCookie().some((line) => line.startsWith("lk_session=;") && /Max-Age=0/i.test(line));
}

describe("a deleted user's session", () => {
  it("counts as no session at /authorize: the cookie is cleared, the sign-in page shown, prompt=none gets login_required", async () => {
    const carol = await createUser("carol");
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(base())), carol.email, carol.password));
    expect(clientRedirect(await decide(browser, consent, "allow"), REDIRECT).get("code")).toBeTruthy();
    expect((await adminCall("DELETE", `/users/${carol.id}`)).status).toBe(204);

    const silent = await browser.get(authorizeUrl({ ...base(), prompt: "none" }));
    expect(Object.fromEntries(clientRedirect(silent, REDIRECT))).toEqual({
      error: "login_required",
      error_description: "the user is not signed in",
      state: "s-1",
      iss: ISSUER,
    });
    expect(sessionCleared(silent)).toBe(true);
    const again = await browser.get(authorizeUrl(base()));
    await expectSignInPage(again);
  });

  it("gets no code at POST /consent: the sign-in page instead", async () => {
    const dave = await createUser("dave");
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl(base())), dave.email, dave.password));
    expect(consent.status).toBe(200);
    expect((await adminCall("DELETE", `/users/${dave.id}`)).status).toBe(204);
    const res = await decide(browser, consent, "allow");
    await expectSignInPage(res);
    expect(sessionCleared(res)).toBe(true);
  });
});

describe("prompt=login and max_age are satisfied only by signing in", () => {
  it("the sign-in page's own form posted to /consent gets the sign-in page again, not a code", async () => {
    const t = Date.now();
    const { browser } = await obtainCode(base(), REDIRECT);
    for (const [i, extra] of [{ prompt: "login" }, { max_age: "60" }].entries()) {
      // The session is two minutes old (too old for max_age=60).
      setClock(() => t + (i + 1) * 120_000);
      const page = await browser.get(authorizeUrl({ ...base(), ...extra }));
      await expectSignInPage(page);
      const html = await page.clone().text();
      const skipped = await browser.post("/consent", { decision: "allow", interaction: hidden(html, "interaction"), csrf: hidden(html, "csrf") });
      await expectSignInPage(skipped);
      // Signing in is what satisfies it; consent is remembered, so the code follows.
      expect(clientRedirect(await follow(browser, await signIn(browser, page)), REDIRECT).get("code")).toBeTruthy();
    }
  });

  it("max_age=0: a sign-in that crossed a second boundary is not asked for again", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    const t = Math.floor(Date.now() / 1000) * 1000 + 100;
    setClock(() => t);
    const page = await browser.get(authorizeUrl({ ...base(), max_age: "0" }));
    await expectSignInPage(page);
    setClock(() => t + 1000);
    const signedIn = await signIn(browser, page);
    setClock(() => t + 2000);
    expect(clientRedirect(await follow(browser, signedIn), REDIRECT).get("code")).toBeTruthy();
  });
});

describe("a sign-in made for the request stands in for prompt=login and max_age only so far", () => {
  it("max_age: a consent page left open longer than max_age (and the minute of grace) asks for a sign-in again", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    const t = Date.now();
    setClock(() => t + 120_000);
    const page = await browser.get(authorizeUrl({ ...base(), scope: "mcp:read mcp:write", max_age: "90" }));
    const consent = await follow(browser, await signIn(browser, page));
    expect(await consent.clone().text()).toContain("Allow");
    setClock(() => t + 120_000 + 91_000);
    await expectSignInPage(await decide(browser, consent, "allow"));
  });

  it("prompt=login: the continue URL gives one code; replayed from the history it gives an error, not a second code", async () => {
    const { browser } = await obtainCode(base(), REDIRECT);
    const signedIn = await signIn(browser, await browser.get(authorizeUrl({ ...base(), prompt: "login" })));
    const continueUrl = signedIn.headers.get("location") as string;
    expect(clientRedirect(await browser.get(continueUrl), REDIRECT).get("code")).toBeTruthy();
    const replayed = await browser.get(continueUrl);
    expect(replayed.status).toBe(400);
    expect(replayed.headers.get("location")).toBeNull();
    expect(await replayed.text()).toContain("this sign-in was already used; start again from the application");
  });

  it("a consent form posted twice (a double click) gets its code both times; the continue URL replayed after it gets none", async () => {
    const browser = new Browser();
    const page = await browser.get(authorizeUrl({ ...base(), scope: "mcp:read mcp:write", prompt: "login" }));
    const signedIn = await signIn(browser, page, "bob@example.com", "bob-dev-password");
    const continueUrl = signedIn.headers.get("location") as string;
    const consent = await browser.get(continueUrl);
    const html = await consent.text();
    const form = { decision: "allow", interaction: hidden(html, "interaction"), csrf: hidden(html, "csrf"), for: hidden(html, "for") };
    const [first, second] = [await browser.post("/consent", form), await browser.post("/consent", form)];
    expect(clientRedirect(first, REDIRECT).get("code")).toBeTruthy();
    expect(clientRedirect(second, REDIRECT).get("code")).toBeTruthy();
    // Replayed from the history, the continue URL shows no consent page that could give a third code.
    const replayed = await browser.get(continueUrl);
    expect(replayed.status).toBe(400);
    expect(await replayed.text()).toContain("this sign-in was already used; start again from the application");
  });

  it("prompt=login consent: the continue URL replayed after the code shows no second consent page", async () => {
    const browser = new Browser();
    const page = await browser.get(authorizeUrl({ ...base(), prompt: "login consent" }));
    const continueUrl = (await signIn(browser, page, "bob@example.com", "bob-dev-password")).headers.get("location") as string;
    expect(clientRedirect(await decide(browser, await browser.get(continueUrl), "allow"), REDIRECT).get("code")).toBeTruthy();
    const replayed = await browser.get(continueUrl);
    expect(replayed.status).toBe(400);
    expect(await replayed.text()).toContain("this sign-in was already used; start again from the application");
  });

  it("the consent form answers for the account it was shown to: another account signed in meanwhile is asked anew", async () => {
    const browser = new Browser();
    const consent = await follow(browser, await signIn(browser, await browser.get(authorizeUrl({ ...base(), scope: "mcp:read mcp:write" }))));
    const html = await consent.text();
    expect(html).toContain("alice@example.com");
    // Another tab signs in as bob.
    await signIn(browser, await browser.get(authorizeUrl({ ...base(), prompt: "login" })), "bob@example.com", "bob-dev-password");
    const answer = await browser.post("/consent", {
      decision: "allow",
      interaction: hidden(html, "interaction"),
      csrf: hidden(html, "csrf"),
      for: hidden(html, "for"),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("location")).toBeNull();
    expect(await answer.text()).toContain("bob@example.com");
  });
});

describe("id_token_hint (OIDC Core §3.1.2.1)", () => {
  /** Alice's browser after a sign-in and consent with openid, and the ID token that flow issued to `app`. */
  async function aliceWithIdToken(): Promise<{ browser: Browser; idToken: string }> {
    const p = await pkce();
    const params = { ...base(), scope: "openid mcp:read", code_challenge: p.challenge };
    const { code, browser } = await obtainCode(params, REDIRECT);
    const form = { grant_type: "authorization_code", code, code_verifier: p.verifier, client_id: app.client_id, redirect_uri: REDIRECT };
    const res = await call("/token", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams(form).toString(),
    });
    const { id_token } = (await res.json()) as { id_token: string };
    return { browser, idToken: id_token };
  }

  it("answers prompt=none for the user the hint names; another signed-in user gets login_required, or the sign-in page", async () => {
    const { browser: alice, idToken } = await aliceWithIdToken();
    const silent = { ...base(), scope: "openid mcp:read", prompt: "none", id_token_hint: idToken };
    expect(clientRedirect(await alice.get(authorizeUrl(silent)), REDIRECT).get("code")).toBeTruthy();

    const bob = new Browser();
    await signIn(bob, await bob.get(authorizeUrl(base())), "bob@example.com", "bob-dev-password");
    const refused = clientRedirect(await bob.get(authorizeUrl(silent)), REDIRECT);
    expect(refused.get("error")).toBe("login_required");
    expect(refused.get("error_description")).toBe("the user is not signed in");
    await expectSignInPage(await bob.get(authorizeUrl({ ...silent, prompt: undefined })));
  });

  it("a sign-in as another user than the hint names, made for the request, gets no code: the sign-in page again", async () => {
    const { idToken } = await aliceWithIdToken();
    const fresh = new Browser();
    const page = await fresh.get(authorizeUrl({ ...base(), scope: "openid mcp:read", id_token_hint: idToken }));
    await expectSignInPage(await follow(fresh, await signIn(fresh, page, "bob@example.com", "bob-dev-password")));
  });

  it("refuses a hint this server did not issue to the client", async () => {
    const refused = clientRedirect(await new Browser().get(authorizeUrl({ ...base(), id_token_hint: "not-a-jwt" })), REDIRECT);
    expect(refused.get("error")).toBe("invalid_request");
    expect(refused.get("error_description")).toBe("id_token_hint is not a JWT");
  });
});
