import { expect } from "vitest";
import { sha256 } from "../../workers/crypto";
import { call, postForm, type Send } from "./helpers";

/** A minimal browser for the Workers tests: a cookie jar, and form fields read out of the pages. */
export class Browser {
  private cookies = new Map<string, string>();
  /** Each browser comes from its own address, as people do; rate limits key on it. */
  readonly ip = `198.51.100.${Math.floor(Math.random() * 250) + 1}`;

  /** `send`: how requests reach the Worker (`withVars(…)` for other settings). */
  constructor(private readonly send: Send = call) {}

  get cookieHeader(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  }

  private remember(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(";");
      const eq = (pair as string).indexOf("=");
      const name = (pair as string).slice(0, eq);
      const value = (pair as string).slice(eq + 1);
      if (/max-age=0/i.test(line) || value === "") this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
  }

  async get(path: string): Promise<Response> {
    const res = await this.send(path, { headers: { Cookie: this.cookieHeader, "CF-Connecting-IP": this.ip }, redirect: "manual" });
    this.remember(res);
    return res;
  }

  async post(path: string, fields: Record<string, string>): Promise<Response> {
    const res = await postForm(path, fields, { Cookie: this.cookieHeader, "CF-Connecting-IP": this.ip }, this.send);
    this.remember(res);
    return res;
  }
}

/** The value of a hidden input in a page. */
export function hidden(html: string, name: string): string {
  const m = new RegExp(`<input type="hidden" name="${name}" value="([^"]*)"`).exec(html);
  if (!m) throw new Error(`no hidden ${name} in page`);
  return (m[1] as string).replaceAll("&amp;", "&").replaceAll("&quot;", '"');
}

export interface PkcePair {
  verifier: string;
  challenge: string;
}

export async function pkce(): Promise<PkcePair> {
  const verifier = "v".repeat(10) + crypto.randomUUID().replaceAll("-", "") + "x".repeat(10);
  return { verifier, challenge: await sha256(verifier) };
}

export function authorizeUrl(params: Record<string, string | string[] | undefined>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const x of v === undefined ? [] : [v].flat()) q.append(k, x);
  return `/authorize?${q}`;
}

/** Signs in through the login page that `page` is, and returns the response after the login POST. */
export async function signIn(browser: Browser, page: Response, email = "alice@example.com", password = "alice-dev-password"): Promise<Response> {
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain("Sign in");
  return browser.post("/login", { email, password, interaction: hidden(html, "interaction"), csrf: hidden(html, "csrf") });
}

/** Follows a same-origin 303 and returns the next response. */
export async function follow(browser: Browser, res: Response): Promise<Response> {
  expect(res.status).toBe(303);
  const location = res.headers.get("location") as string;
  return browser.get(location);
}

/** Submits the consent page with `decision` and returns the redirect to the client. */
export async function decide(browser: Browser, page: Response, decision: "allow" | "deny"): Promise<Response> {
  expect(page.status).toBe(200);
  const html = await page.text();
  expect(html).toContain("Allow");
  return browser.post("/consent", { decision, interaction: hidden(html, "interaction"), csrf: hidden(html, "csrf"), for: hidden(html, "for") });
}

/** The query of a redirect to the client, asserting it goes to `redirectUri`. */
export function clientRedirect(res: Response, redirectUri: string): URLSearchParams {
  expect(res.status).toBe(303);
  const location = new URL(res.headers.get("location") as string);
  expect(`${location.origin}${location.pathname}`).toBe(redirectUri);
  return location.searchParams;
}

/** The whole browser part of the code flow for alice: authorize → sign in → consent → code. */
export async function obtainCode(
  params: Record<string, string | string[] | undefined>,
  redirectUri: string,
  browser = new Browser(),
): Promise<{ code: string; query: URLSearchParams; browser: Browser }> {
  let res = await browser.get(authorizeUrl(params));
  if (res.status === 200 && (await res.clone().text()).includes('action="/login"')) res = await follow(browser, await signIn(browser, res));
  if (res.status === 200) res = await decide(browser, res, "allow");
  const query = clientRedirect(res, redirectUri);
  return { code: query.get("code") as string, query, browser };
}

/** A code for `clientId` with a fresh PKCE pair (S256), for `resource` and `scope`, and its verifier. */
export async function codeWithVerifier(clientId: string, redirectUri: string, resource: string, scope: string): Promise<{ code: string; verifier: string }> {
  const p = await pkce();
  const params = {
    response_type: "code",
    client_id: clientId,
    redirect_uri: redirectUri,
    code_challenge: p.challenge,
    code_challenge_method: "S256",
    resource,
    scope,
  };
  const { code } = await obtainCode(params, redirectUri);
  return { code, verifier: p.verifier };
}
