import { expect } from "vitest";
import { Browser, hidden } from "./browser";
import { basic, type CreatedClient, postForm } from "./helpers";

/** A browser signed in through `/signin` (the inbox's sign-in page), landing on `next`. */
export async function signedInBrowser(email = "alice@example.com", password = "alice-dev-password", next = "/inbox"): Promise<Browser> {
  const browser = new Browser();
  const page = await browser.get(`/signin?next=${encodeURIComponent(next)}`);
  expect(page.status).toBe(200);
  const html = await page.text();
  const res = await browser.post("/signin", { email, password, csrf: hidden(html, "csrf"), next: hidden(html, "next") });
  expect(res.status).toBe(303);
  expect(res.headers.get("location")).toBe(next);
  return browser;
}

/** The inbox page's pending request ids (in order) and its CSRF token. */
export async function inboxState(browser: Browser): Promise<{ ids: string[]; csrf: string; html: string }> {
  const res = await browser.get("/inbox");
  expect(res.status).toBe(200);
  const html = await res.text();
  const ids = [...html.matchAll(/<li class="request" data-id="([^"]+)"/g)].map((m) => m[1] as string);
  return { ids, csrf: /data-csrf="([^"]+)"/.exec(html)?.[1] as string, html };
}

/** Presses Approve or Deny on the request showing `binding` (else the newest); returns where the form redirected. */
export async function decideNewest(browser: Browser, decision: "approve" | "deny", binding?: string): Promise<string> {
  const { ids, csrf, html } = await inboxState(browser);
  expect(ids.length).toBeGreaterThan(0);
  let id = ids[ids.length - 1] as string;
  if (binding) {
    const card = html.split('<li class="request"').find((part) => part.includes(`<strong class="binding">${binding}</strong>`));
    id = /data-id="([^"]+)"/.exec(card ?? "")?.[1] as string;
    expect(id, `no request with binding message ${binding}`).toBeDefined();
  }
  const res = await browser.post("/inbox/decide", { id, decision, csrf });
  expect(res.status).toBe(303);
  return res.headers.get("location") as string;
}

/** A client-authenticated POST (HTTP Basic) to `path`. */
export function asClient(client: CreatedClient, path: string, fields: Record<string, string | string[]>): Promise<Response> {
  return postForm(path, fields, { Authorization: basic(client.client_id, client.client_secret as string) });
}

/** A CIBA token request for `authReqId`. */
export function pollCiba(client: CreatedClient, authReqId: string, extra: Record<string, string> = {}): Promise<Response> {
  return asClient(client, "/token", { grant_type: "urn:openid:params:grant-type:ciba", auth_req_id: authReqId, ...extra });
}
